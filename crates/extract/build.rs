//! Makes `butd-extract` start from any shell: the libtorch it was linked against (reported by
//! torch-sys, `links = "tch"`, as `DEP_TCH_LIBTORCH_LIB`) becomes the executable's RUNPATH,
//! so no LD_LIBRARY_PATH is needed. The same directory is compiled in as `BUTD_LIBTORCH_LIB`,
//! which `butd extract` reads back to say what to do when libtorch has moved since the build.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    if !dir.is_empty() {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
    println!("cargo:rustc-env=BUTD_LIBTORCH_LIB={dir}");
}
