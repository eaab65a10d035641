//! The environment, read once, as a figment provider of `KEFU__SECTION__KEY`
//! overrides.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

const PREFIX: &str = "KEFU__";

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct EnvSnapshot {
    vars: Vec<(String, String)>,
}

impl EnvSnapshot {
    /// The process environment, now.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Given variables (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// This snapshot with one more variable (it wins over an earlier one).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((key.into(), value.into()));
        self
    }

    /// The value of one variable, exact name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Provider for EnvSnapshot {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable(s) KEFU__*")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (k, v) in &self.vars {
            let Some(rest) = k.strip_prefix(PREFIX) else {
                continue;
            };
            let path = rest.to_ascii_lowercase().replace("__", ".");
            if path.is_empty() || path.split('.').any(str::is_empty) {
                continue;
            }
            let value: Value = v.parse().unwrap_or_else(|_| Value::from(v.clone()));
            // Strings that look like secrets or URLs must stay strings.
            let value = match value {
                Value::String(..) | Value::Num(..) | Value::Bool(..) => value,
                _ => Value::from(v.clone()),
            };
            if let Some(nested) = figment::util::nest(&path, value).into_dict() {
                merge(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Merges `from` into `into`, recursing into tables; `from` wins.
fn merge(into: &mut Dict, from: Dict) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(_, b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}
