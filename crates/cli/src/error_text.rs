//! How both binaries (`butd`, and `butd-extract` through `#[path]`) print an error: the chain of
//! causes joined by ": ", each said once. Many error types show their cause in their own
//! message and also return it as `source()`, so a plain `{:#}` printed "No such file or
//! directory (os error 2): No such file or directory (os error 2)".

/// `error` and its causes, a cause whose text the line already holds left out.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "x.jpg: cannot read the file: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Wrapped(io)).context("image 3");
        assert_eq!(
            error_text(&e),
            "image 3: x.jpg: cannot read the file: entity not found"
        );
    }
}
