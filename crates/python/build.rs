//! The extension links the libtorch of the installed `torch` wheel: at run time it is found at
//! `site-packages/torch/lib`, beside `site-packages/butd/`, whatever LD_LIBRARY_PATH says. (When
//! `torch` is imported first, as `butd/__init__.py` does, the libraries are already loaded by
//! soname and this path is not even searched: one libtorch per process either way.)
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");
}
