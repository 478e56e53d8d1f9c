//! The scalar function library: one definition per function.
//!
//! Owns the registry: each [`FunctionDef`] holds a function's names
//! (aliases included), its type rule (argument types to the types its
//! arguments are cast to and its return type, with Spark's implicit
//! coercions), its null rule, and its two kernels side by side: the row
//! kernel (`&[&Value] -> Value`, for continuous mode) and the column kernel
//! (Arrow arrays in, one array out, for micro-batch mode). The common
//! kernels also have a direct row form, built when a call is bound for
//! where its arguments come from, so that continuous mode calls one closure
//! per function and event (see [`Kernel::with_direct`]). Also owns name
//! lookup, the nearest-name suggestion for an unknown function and the
//! markdown list of functions the README carries.
//!
//! Semantics follow Spark SQL with `spark.sql.ansi.enabled=false`: a value
//! that does not convert, an argument out of range or a failed parse gives
//! null, never an error. Times are read and built in the query's session
//! time zone (UTC unless the query sets one): a function whose answer
//! depends on it has a zoned type rule, which gets the zone at bind time and
//! builds kernels for it.
//!
//! This module must not know SQL syntax, operators or the runtimes: the
//! binder calls a definition's type rule, the evaluators call its kernels.

mod array;
mod kernel;
mod math;
mod null;
mod string;
mod time;
mod types;

#[cfg(test)]
mod tests;

pub(crate) use array::GENERATORS;
pub(crate) use kernel::{true_mask, Arg, Direct, Kernel, Lit};

use crate::schema::{DataType, Value};
use crate::suggest::edit_distance;
use crate::time::Zone;

/// What a function is about, for the function list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    /// Nulls and conditionals.
    Null,
    /// Numbers.
    Math,
    /// Text.
    String,
    /// Dates and timestamps.
    Time,
    /// Arrays.
    Array,
}

impl Category {
    /// Every category, in the order the function list shows them.
    const ALL: [Category; 5] = [
        Category::Null,
        Category::Math,
        Category::String,
        Category::Time,
        Category::Array,
    ];

    fn title(self) -> &'static str {
        match self {
            Category::Null => "Nulls and conditionals",
            Category::Math => "Math",
            Category::String => "Strings",
            Category::Time => "Dates and timestamps (in the session time zone)",
            Category::Array => "Arrays",
        }
    }
}

/// One argument as the type rule sees it: its type, and its value when it
/// is a constant (patterns and digit counts are read at bind time).
#[derive(Clone, Debug)]
pub(crate) struct ArgInfo {
    /// The argument's type (`Null` for a bare NULL).
    pub(crate) dt: DataType,
    /// The value, when the argument is a literal.
    pub(crate) literal: Option<Value>,
}

/// A call that passed its type rule.
pub(crate) struct Resolved {
    /// The result type.
    pub(crate) ret: DataType,
    /// The type each argument is cast to before the kernels see it.
    pub(crate) arg_types: Vec<DataType>,
    /// The kernels, with anything compiled at bind time (patterns).
    pub(crate) kernel: Kernel,
}

/// The type rule: the call's arguments to a resolved call, or the reason
/// the call is invalid (the caller adds where).
pub(crate) type TypeRule = fn(&str, &[ArgInfo]) -> Result<Resolved, String>;

/// A type rule for a function whose answer depends on the session time
/// zone: the zone's kernels are built at bind time.
pub(crate) type ZonedRule = fn(&str, &[ArgInfo], Zone) -> Result<Resolved, String>;

/// A function's type rule, with or without the session time zone.
#[derive(Clone, Copy)]
pub(crate) enum Rule {
    /// The answer does not depend on the zone.
    Plain(TypeRule),
    /// The answer depends on the zone.
    Zoned(ZonedRule),
}

impl Rule {
    /// Resolves a call in `zone`.
    pub(crate) fn resolve(
        self,
        name: &str,
        args: &[ArgInfo],
        zone: Zone,
    ) -> Result<Resolved, String> {
        match self {
            Rule::Plain(r) => r(name, args),
            Rule::Zoned(r) => r(name, args, zone),
        }
    }
}

/// A check of a literal argument, run when the query is parsed so that an
/// error points at the argument: `(position, value)`.
pub(crate) type LiteralCheck = fn(usize, &Value) -> Result<(), String>;

/// One scalar function.
pub(crate) struct FunctionDef {
    /// The name, lowercase.
    pub(crate) name: &'static str,
    /// Other names of the same function.
    pub(crate) aliases: &'static [&'static str],
    /// For the function list.
    pub(crate) category: Category,
    /// How a call is written, e.g. `substring(str, pos[, len])`.
    pub(crate) signature: &'static str,
    /// One line: what it returns, its null rule.
    pub(crate) doc: &'static str,
    /// Fewest arguments.
    pub(crate) min_args: usize,
    /// Most arguments (`None`: any number).
    pub(crate) max_args: Option<usize>,
    /// Positions of the arguments that must be literals.
    pub(crate) literal_args: &'static [usize],
    /// What such a literal is (`a string literal`).
    pub(crate) literal_what: &'static str,
    /// Checks a literal argument's value.
    pub(crate) check_literal: LiteralCheck,
    /// False for functions of the processing time.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) deterministic: bool,
    /// The type rule, which also builds the kernels.
    pub(crate) resolve: Rule,
}

impl std::fmt::Debug for FunctionDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// A literal check that accepts everything.
pub(crate) fn any_literal(_: usize, _: &Value) -> Result<(), String> {
    Ok(())
}

/// A definition with the common defaults (no literal arguments, deterministic).
const fn def(
    name: &'static str,
    category: Category,
    signature: &'static str,
    doc: &'static str,
    args: (usize, Option<usize>),
    resolve: TypeRule,
) -> FunctionDef {
    base(name, category, signature, doc, args, Rule::Plain(resolve))
}

/// [`def`] of a function whose answer depends on the session time zone.
const fn zoned_def(
    name: &'static str,
    category: Category,
    signature: &'static str,
    doc: &'static str,
    args: (usize, Option<usize>),
    resolve: ZonedRule,
) -> FunctionDef {
    base(name, category, signature, doc, args, Rule::Zoned(resolve))
}

const fn base(
    name: &'static str,
    category: Category,
    signature: &'static str,
    doc: &'static str,
    args: (usize, Option<usize>),
    resolve: Rule,
) -> FunctionDef {
    FunctionDef {
        name,
        aliases: &[],
        category,
        signature,
        doc,
        min_args: args.0,
        max_args: args.1,
        literal_args: &[],
        literal_what: "a literal",
        check_literal: any_literal,
        deterministic: true,
        resolve,
    }
}

/// Every function's definition module, in list order.
const MODULES: [&[FunctionDef]; 5] = [
    null::DEFS,
    math::DEFS,
    string::DEFS,
    time::DEFS,
    array::DEFS,
];

/// Every function.
pub(crate) fn all() -> impl Iterator<Item = &'static FunctionDef> {
    MODULES.iter().flat_map(|m| m.iter())
}

/// The function called `name` (any case, aliases included).
pub(crate) fn lookup(name: &str) -> Option<&'static FunctionDef> {
    all().find(|d| {
        d.name.eq_ignore_ascii_case(name) || d.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// Every callable name: the registry's names and aliases, then `extra`
/// (the aggregates and `window`, which the registry does not hold).
pub(crate) fn names<'a>(extra: &'a [&'a str]) -> impl Iterator<Item = &'a str> {
    all()
        .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
        .chain(extra.iter().copied())
}

/// The callable name nearest to `name` by edit distance (ties: list order).
pub(crate) fn nearest<'a>(name: &str, extra: &'a [&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    names(extra).min_by_key(|n| edit_distance(&name, n))
}

/// Checks a call's argument count: the message when it is wrong.
pub(crate) fn check_arity(d: &FunctionDef, called: &str, given: usize) -> Result<(), String> {
    let ok = given >= d.min_args && d.max_args.is_none_or(|m| given <= m);
    if ok {
        return Ok(());
    }
    let expected = match d.max_args {
        Some(m) if m == d.min_args => m.to_string(),
        Some(m) if m == d.min_args + 1 => format!("{} or {m}", d.min_args),
        Some(m) => format!("{} to {m}", d.min_args),
        None => format!("at least {}", d.min_args),
    };
    let s = if expected == "1" { "" } else { "s" };
    Err(format!(
        "function `{called}` takes {expected} argument{s}, but {given} were given"
    ))
}

/// The ordinal of a 0-based argument position, in words.
pub(crate) fn ordinal(i: usize) -> String {
    match i {
        0 => "first".into(),
        1 => "second".into(),
        2 => "third".into(),
        3 => "fourth".into(),
        n => format!("{}th", n + 1),
    }
}

/// The list of supported functions as markdown, for the README: the
/// README's section between `<!-- functions:begin -->` and
/// `<!-- functions:end -->` is exactly this text (a test checks it).
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "Generated from the function registry (`engine/src/expr/functions`); a test keeps \
         this list and the registry equal. Semantics are Spark SQL's with \
         `spark.sql.ansi.enabled=false`: a value that does not convert, an argument out of \
         range or a failed parse gives null rather than an error. Dates and times are read \
         and built in the session time zone (`--timezone` on the command line, `.time_zone(..)` on a query's writer; default UTC).\n\n\
         Expressions: `CASE WHEN … THEN … ELSE … END` (searched and simple), \
         `IF(c, a, b)`, `[NOT] LIKE`, `[NOT] ILIKE`, `[NOT] RLIKE`, `IN (…)`, \
         `BETWEEN`, `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`, `<=>`, `||`, \
         `+ - * / % DIV`, `timestamp ± INTERVAL n UNIT` (`INTERVAL 1 HOUR`, `INTERVAL '30' MINUTES`, `INTERVAL 1 MONTH`), `CAST(x AS string|int|bigint|double|boolean|timestamp|date)`. \
         Aggregates: `count`, `sum`, `avg`, `min`, `max`, `first`/`first_value` and \
         `last`/`last_value` (`(x[, ignoreNulls])`), `stddev`/`std`/`stddev_samp`, \
         `stddev_pop`, `variance`/`var_samp`, `var_pop`, `approx_count_distinct(x[, rsd])`, \
         `collect_list` (an array of the non-null values in arrival order) \
         (no `DISTINCT` aggregates on a stream); `window(ts, size[, slide[, start]])` \
         as a GROUP BY key (windows start at multiples of the slide since the epoch plus \
         `start`, in every session time zone, as in Spark).\n",
    );
    for cat in Category::ALL {
        out.push_str(&format!("\n**{}**\n\n", cat.title()));
        for d in all().filter(|d| d.category == cat) {
            let aliases = if d.aliases.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = d.aliases.iter().map(|a| format!("`{a}`")).collect();
                format!(" (also {})", list.join(", "))
            };
            out.push_str(&format!("- `{}`{aliases}: {}\n", d.signature, d.doc));
        }
    }
    out
}

/// The wider common type of `types` with Spark's string promotion (the
/// results of a `CASE`), or the message naming them.
pub(crate) fn common_type(what: &str, types: &[DataType]) -> Result<DataType, String> {
    types::common(what, types, true)
}

#[cfg(test)]
/// `round`'s rounding of a double: half away from zero at `digits` decimal
/// places, on the shortest decimal form.
pub(crate) fn round_half_up(v: f64, digits: i32) -> f64 {
    math::round_decimal(v, digits, false)
}
