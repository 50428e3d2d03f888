//! trybuild UI tests: each declaration error of `resnext!` and the message and span it gets.
//! Regenerate the expected `.stderr` files with `TRYBUILD=overwrite` after reviewing a change.

#[test]
fn declaration_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
