//! How a setting is declared. One `settings!` entry per setting (its doc comment is its help
//! text) becomes the typed [`Config`](super::Config) field, its row in
//! [`SETTINGS`](super::SETTINGS) (name, default, help, secret or not), its parsing with the
//! variable named in errors, its place in the public view and its `Debug` line. Nothing else
//! lists the settings.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Map, Value};

use super::parse::Choice;
use super::ConfigError;

/// One environment variable, as `tenure config check`, the README and `.env.example` describe it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The variable, e.g. `DF_JWT_TTL`.
    pub var: &'static str,
    /// The text used when the variable is unset or empty; `""` means unset.
    pub default: &'static str,
    /// The declaration's doc comment.
    pub doc: &'static str,
    /// Never printed, logged or shown; masked in `Debug`.
    pub secret: bool,
}

impl Setting {
    /// The help text: the doc comment's lines joined into one.
    pub fn help(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// How a setting appears in the public view (the admin environment and `tenure config check`).
pub enum Public<T> {
    /// The value's own public form under the field's name (plus `_seconds` for durations).
    /// A secret in this mode is left out.
    Value,
    /// Left out.
    Hidden,
    /// This masked form under the field's name; for a secret, also its `Debug` form.
    With(fn(&T) -> Value),
}

/// The public form of a setting's type: durations in whole seconds, addresses as text,
/// secrets masked.
pub trait Shown {
    /// Appended to the field's name in the public view.
    const SUFFIX: &'static str = "";
    fn public(&self) -> Value;
}

impl Shown for Duration {
    const SUFFIX: &'static str = "_seconds";
    fn public(&self) -> Value {
        json!(self.as_secs())
    }
}

impl<T: Shown> Shown for Option<T> {
    const SUFFIX: &'static str = T::SUFFIX;
    fn public(&self) -> Value {
        self.as_ref().map_or(Value::Null, Shown::public)
    }
}

impl<T: Shown> Shown for Vec<T> {
    fn public(&self) -> Value {
        Value::Array(self.iter().map(Shown::public).collect())
    }
}

impl<T: Choice> Shown for T {
    fn public(&self) -> Value {
        json!(self.name())
    }
}

impl Shown for SecretString {
    fn public(&self) -> Value {
        json!("[redacted]")
    }
}

macro_rules! shown_as {
    ($($ty:ty => $to:expr),* $(,)?) => {
        $(impl Shown for $ty {
            fn public(&self) -> Value {
                let to: fn(&Self) -> Value = $to;
                to(self)
            }
        })*
    };
}

shown_as! {
    bool => |b| json!(b),
    u32 => |n| json!(n),
    usize => |n| json!(n),
    String => |s| json!(s),
    SocketAddr => |a| json!(a.to_string()),
    ipnet::IpNet => |n| json!(n.to_string()),
    PathBuf => |p| json!(p.display().to_string()),
}

/// Reads one variable: unset or empty (after trimming) takes the default.
pub(super) fn read<T>(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let given = lookup(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    parse(given.as_deref().unwrap_or(default)).map_err(|message| ConfigError { var, message })
}

/// Adds a setting to the public view, as its declaration says.
pub(super) fn show<T: Shown>(
    view: &mut Map<String, Value>,
    field: &str,
    value: &T,
    secret: bool,
    public: Public<T>,
) {
    let shown = match public {
        Public::Hidden => return,
        Public::Value if secret => return,
        Public::Value => value.public(),
        Public::With(mask) => mask(value),
    };
    view.insert(format!("{field}{}", T::SUFFIX), shown);
}

/// Adds a setting to `Debug`: a secret in its masked form, anything else as it is.
pub(super) fn debug_field<T: Shown + fmt::Debug>(
    out: &mut fmt::DebugStruct<'_, '_>,
    field: &str,
    value: &T,
    secret: bool,
    public: Public<T>,
) {
    match (secret, public) {
        (false, _) => out.field(field, value),
        (true, Public::With(mask)) => out.field(field, &format_args!("{}", mask(value))),
        (true, _) => out.field(field, &format_args!("{}", value.public())),
    };
}

/// Declares the settings; see the module documentation.
macro_rules! settings {
    (@secret) => { false };
    (@secret $secret:literal) => { $secret };
    (@public) => { $crate::config::declare::Public::Value };
    (@public $public:expr) => { $public };
    (
        $(
            $(#[doc = $doc:literal])+
            $field:ident: $ty:ty {
                var: $var:literal,
                default: $default:literal,
                parse: $parse:expr,
                $(secret: $secret:literal,)?
                $(public: $public:expr,)?
            }
        )+
    ) => {
        /// The whole configuration, one field per [`SETTINGS`] row. `Debug` never prints a
        /// secret.
        #[derive(Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        /// Every setting, in the order of the README table and `.env.example`.
        pub const SETTINGS: &[Setting] = &[
            $( Setting {
                var: $var,
                default: $default,
                doc: concat!($($doc, "\n"),+),
                secret: settings!(@secret $($secret)?),
            }, )+
        ];

        impl Config {
            /// Each variable parsed on its own; [`Config::from_lookup`] then checks how they
            /// fit together.
            fn read_each(
                lookup: &dyn Fn(&str) -> Option<String>,
            ) -> Result<Self, ConfigError> {
                Ok(Self {
                    $( $field: $crate::config::declare::read(lookup, $var, $default, $parse)?, )+
                })
            }

            /// The settings each in its public form (durations in seconds, secrets left out or
            /// masked), in declaration order.
            fn public_each(&self) -> serde_json::Map<String, serde_json::Value> {
                let mut view = serde_json::Map::new();
                $(
                    $crate::config::declare::show::<$ty>(
                        &mut view,
                        stringify!($field),
                        &self.$field,
                        settings!(@secret $($secret)?),
                        settings!(@public $($public)?),
                    );
                )+
                view
            }
        }

        impl std::fmt::Debug for Config {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut out = f.debug_struct("Config");
                $(
                    $crate::config::declare::debug_field::<$ty>(
                        &mut out,
                        stringify!($field),
                        &self.$field,
                        settings!(@secret $($secret)?),
                        settings!(@public $($public)?),
                    );
                )+
                out.finish()
            }
        }
    };
}
