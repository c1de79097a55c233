//! Compiles `csrc/jpeg_shim.c` against the libjpeg-turbo headers that `mozjpeg-sys` builds
//! (it exports them as `DEP_JPEG_INCLUDE`, a path list).

fn main() {
    println!("cargo:rerun-if-changed=csrc/jpeg_shim.c");
    let includes = std::env::var_os("DEP_JPEG_INCLUDE")
        .expect("mozjpeg-sys exports DEP_JPEG_INCLUDE (its `links = \"jpeg\"`)");
    let mut build = cc::Build::new();
    for dir in std::env::split_paths(&includes) {
        build.include(dir);
    }
    build
        .file("csrc/jpeg_shim.c")
        .warnings(true)
        .compile("butd_jpeg_shim");
}
