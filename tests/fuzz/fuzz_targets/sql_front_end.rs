#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: runnel_fuzz::LimitedAlloc = runnel_fuzz::LimitedAlloc;

fuzz_target!(|data: &[u8]| {
    runnel_fuzz::sql_front_end(data);
});
