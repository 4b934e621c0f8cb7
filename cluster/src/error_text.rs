//! Concise one-line descriptions of transport errors, whose own `Display` either hides the cause
//! (tonic) or dumps debug structures (etcd-client's gRPC status).

/// Renders an error with its sources joined by `: `, dropping a cause that repeats its parent.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !last.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        last = part;
        source = cause.source();
    }
    text
}

/// Describes an etcd client error by its gRPC message and transport cause.
pub fn etcd_error(err: &etcd_client::Error) -> String {
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            let mut text = format!("{:?}: {}", status.code(), status.message());
            if let Some(source) = std::error::Error::source(status) {
                let cause = error_chain(source);
                if !text.ends_with(&cause) {
                    text.push_str(": ");
                    text.push_str(&cause);
                }
            }
            text
        }
        other => error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn repeated_causes_are_dropped() {
        let err = Layer(
            "transport error",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer(
                    "tcp connect error",
                    Some(Box::new(Layer("refused", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "transport error: tcp connect error: refused"
        );
    }
}
