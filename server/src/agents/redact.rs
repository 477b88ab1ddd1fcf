//! Redaction: the values of secrets in pitcrew's environment (the models' keys, and the
//! well-known tokens and passwords a developer's shell holds) never leave pitcrew in anything
//! it produces from a check's output or a tool's result, whatever printed them.

use std::borrow::Cow;

/// Variables that hold secrets by name, whatever their value looks like.
const KNOWN: [&str; 22] = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITLAB_TOKEN",
    "GIT_ASKPASS_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "NPM_TOKEN",
    "NODE_AUTH_TOKEN",
    "PYPI_TOKEN",
    "TWINE_PASSWORD",
    "CARGO_REGISTRY_TOKEN",
    "DOCKER_PASSWORD",
    "SLACK_TOKEN",
    "DATABASE_URL",
];
/// Parts of a variable's name that say it holds a secret.
const SECRET_WORDS: [&str; 8] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];
/// Values shorter than this are not redacted: they would match ordinary text.
const MIN_SECRET_LEN: usize = 8;

/// Replaces known secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (variable name, value), longest value first so that a value containing another is
    /// replaced whole.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// The secrets in this process's environment: the variables `named` (the configured
    /// models' key variables), the well-known ones, and any whose name says it is a secret.
    pub fn from_environment(named: &[String]) -> Self {
        Self::from_pairs(std::env::vars(), named)
    }

    fn from_pairs(variables: impl IntoIterator<Item = (String, String)>, named: &[String]) -> Self {
        let mut secrets: Vec<(String, String)> = variables
            .into_iter()
            .filter(|(name, value)| {
                value.len() >= MIN_SECRET_LEN
                    && (named.contains(name)
                        || KNOWN.contains(&name.as_str())
                        || SECRET_WORDS
                            .iter()
                            .any(|word| name.to_ascii_uppercase().contains(word)))
            })
            .collect();
        secrets.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        secrets.dedup_by(|a, b| a.1 == b.1);
        Self { secrets }
    }

    /// `text` with every secret value replaced by `[redacted $NAME]`, and the password of any
    /// URL that carries one (`https://user:token@host`) by `[redacted]`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for (name, value) in &self.secrets {
            if text.contains(value.as_str()) {
                text = Cow::Owned(text.replace(value.as_str(), &format!("[redacted ${name}]")));
            }
        }
        if URL_PASSWORD.is_match(&text) {
            text = Cow::Owned(
                URL_PASSWORD
                    .replace_all(&text, "${scheme}${user}:[redacted]@")
                    .into_owned(),
            );
        }
        text
    }

    /// `bytes` with every secret value replaced, as `redact` does for text.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (name, value) in &self.secrets {
            let needle = value.as_bytes();
            if memchr::memmem::find(&out, needle).is_none() {
                continue;
            }
            let marker = format!("[redacted ${name}]").into_bytes();
            let mut replaced = Vec::with_capacity(out.len());
            let mut at = 0;
            for found in memchr::memmem::find_iter(&out, needle) {
                if found < at {
                    continue;
                }
                replaced.extend_from_slice(&out[at..found]);
                replaced.extend_from_slice(&marker);
                at = found + needle.len();
            }
            replaced.extend_from_slice(&out[at..]);
            out = replaced;
        }
        out
    }

    /// The length of the longest secret: a stream keeps this much minus one back, so that a
    /// secret split across two reads is still found.
    fn longest(&self) -> usize {
        self.secrets.first().map_or(0, |(_, value)| value.len())
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// The password part of a URL: `scheme://user:password@`.
static URL_PASSWORD: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/:@]+):[^\s/@]+@")
        .expect("a valid pattern")
});

/// Redacts a stream read in pieces (a check's output), holding back the end of each piece that
/// could be the start of a secret until the next piece shows whether it is.
#[derive(Debug)]
pub struct RedactingStream {
    redactor: std::sync::Arc<Redactor>,
    pending: Vec<u8>,
}

impl RedactingStream {
    pub fn new(redactor: std::sync::Arc<Redactor>) -> Self {
        Self {
            redactor,
            pending: Vec::new(),
        }
    }

    /// What of the stream so far is safe to pass on, redacted.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let keep = self.redactor.longest().saturating_sub(1);
        let redacted = self.redactor.redact_bytes(&self.pending);
        if redacted.len() <= keep {
            self.pending = redacted;
            return Vec::new();
        }
        let split = redacted.len() - keep;
        self.pending = redacted[split..].to_vec();
        redacted[..split].to_vec()
    }

    /// The rest of the stream, redacted.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.redact_bytes(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_by_configured_known_and_telling_names_are_replaced() {
        let redactor = Redactor::from_pairs(
            [
                ("MY_MODEL_KEY".to_owned(), "sk-model-1234567890".to_owned()),
                ("GITHUB_TOKEN".to_owned(), "ghp_abcdefghijkl".to_owned()),
                (
                    "ACME_DEPLOY_TOKEN".to_owned(),
                    "deploy-9876543210".to_owned(),
                ),
                ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
                ("SHORT_TOKEN".to_owned(), "abc".to_owned()),
            ],
            &["MY_MODEL_KEY".to_owned()],
        );
        let text =
            "key sk-model-1234567890, gh ghp_abcdefghijkl, deploy-9876543210, /usr/bin:/bin abc";
        assert_eq!(
            redactor.redact(text),
            "key [redacted $MY_MODEL_KEY], gh [redacted $GITHUB_TOKEN], [redacted $ACME_DEPLOY_TOKEN], /usr/bin:/bin abc"
        );
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(
            redactor.redact("remote https://bot:ghp_other123@github.com/a/b.git"),
            "remote https://bot:[redacted]@github.com/a/b.git"
        );
    }

    #[test]
    fn a_secret_split_across_reads_is_still_redacted() {
        let redactor = std::sync::Arc::new(Redactor::from_pairs(
            [("GITHUB_TOKEN".to_owned(), "ghp_abcdefghijkl".to_owned())],
            &[],
        ));
        let text = b"start ghp_abcdefghijkl middle ghp_abcdefghijkl end";
        for split in 1..text.len() {
            let mut stream = RedactingStream::new(redactor.clone());
            let mut out = Vec::new();
            for piece in text.chunks(split) {
                out.extend(stream.push(piece));
            }
            out.extend(stream.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "start [redacted $GITHUB_TOKEN] middle [redacted $GITHUB_TOKEN] end",
                "pieces of {split}"
            );
        }
    }
}
