//! The page: one HTML document with its style and script inlined, compiled
//! into the binary (no file, CDN or framework fetched at run time). Its
//! charts are drawn on canvases by the script itself; each chart records how
//! many points it drew in a `data-points` attribute (what the browser test
//! reads).

/// The whole page.
pub(super) const HTML: &str = concat!(
    include_str!("page/head.html"),
    "<style>\n",
    include_str!("page/page.css"),
    "</style>\n<script>\n",
    include_str!("page/page.js"),
    "</script>\n",
    include_str!("page/body.html"),
);
