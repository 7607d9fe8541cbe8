//! The `connector` world: parse pushed bytes into records, pull pages from a
//! source, deliver actions to a destination.

use crate::{Error, FieldValue, Manifest, Params};

pub use crate::bindings::records::{
    Action, DeliveryFailure, DeliveryReport, Event, Identity, IdentityLink, Modes, Page,
    ParseOutput, Record, Rejection, TraitUpdate,
};

/// A data connector. Implement the modes it declares in [`Connector::modes`];
/// the host never calls the others.
pub trait Connector {
    /// Name, version and parameters.
    fn describe() -> Manifest;

    /// Which of parse / pull / deliver this connector implements.
    fn modes() -> Modes;

    /// Checks parameters once, before the host saves them.
    fn validate(_params: &Params) -> Result<(), Error> {
        Ok(())
    }

    /// Parses one chunk of pushed bytes.
    fn parse(_params: &Params, _data: &[u8]) -> Result<ParseOutput, Error> {
        Err(Error::config("this connector does not parse pushed data"))
    }

    /// Fetches one page from the cursor.
    fn pull(_params: &Params, _cursor: Option<&str>) -> Result<Page, Error> {
        Err(Error::config("this connector does not pull"))
    }

    /// Delivers a batch of actions.
    fn deliver(_params: &Params, _actions: &[Action]) -> Result<DeliveryReport, Error> {
        Err(Error::config("this connector does not deliver"))
    }
}

impl Identity {
    /// An identity of the given kind ("email", "phone", "member_id", …).
    pub fn new(kind: &str, value: &str) -> Self {
        Identity {
            kind: kind.into(),
            value: value.into(),
        }
    }
}

impl Rejection {
    /// A rejected input row and why.
    pub fn new(row: u32, field: Option<&str>, reason: impl Into<String>) -> Self {
        Rejection {
            row,
            field: field.map(Into::into),
            reason: reason.into(),
        }
    }
}

#[doc(hidden)]
pub mod __adapter {
    use super::*;

    pub fn validate<T: Connector>(params: Vec<FieldValue>) -> Result<(), Error> {
        T::validate(&Params::new(params))
    }
    pub fn parse<T: Connector>(
        params: Vec<FieldValue>,
        data: Vec<u8>,
    ) -> Result<ParseOutput, Error> {
        T::parse(&Params::new(params), &data)
    }
    pub fn pull<T: Connector>(
        params: Vec<FieldValue>,
        cursor: Option<String>,
    ) -> Result<Page, Error> {
        T::pull(&Params::new(params), cursor.as_deref())
    }
    pub fn deliver<T: Connector>(
        params: Vec<FieldValue>,
        actions: Vec<Action>,
    ) -> Result<DeliveryReport, Error> {
        T::deliver(&Params::new(params), &actions)
    }
}

/// Exports a [`Connector`] implementation as the component's `connector` world
/// and embeds the contract version.
#[macro_export]
macro_rules! export_connector {
    ($ty:ty) => {
        const _: () = {
            $crate::__embed_wit_version!();

            struct __TesseraConnector;

            impl $crate::bindings::connector::Guest for __TesseraConnector {
                fn describe() -> $crate::Manifest {
                    <$ty as $crate::Connector>::describe()
                }
                fn supports() -> $crate::connector::Modes {
                    <$ty as $crate::Connector>::modes()
                }
                fn validate(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                ) -> ::std::result::Result<(), $crate::Error> {
                    $crate::connector::__adapter::validate::<$ty>(params)
                }
                fn parse(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    data: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<$crate::connector::ParseOutput, $crate::Error> {
                    $crate::connector::__adapter::parse::<$ty>(params, data)
                }
                fn pull(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    cursor: ::std::option::Option<::std::string::String>,
                ) -> ::std::result::Result<$crate::connector::Page, $crate::Error> {
                    $crate::connector::__adapter::pull::<$ty>(params, cursor)
                }
                fn deliver(
                    params: ::std::vec::Vec<$crate::FieldValue>,
                    actions: ::std::vec::Vec<$crate::connector::Action>,
                ) -> ::std::result::Result<$crate::connector::DeliveryReport, $crate::Error>
                {
                    $crate::connector::__adapter::deliver::<$ty>(params, actions)
                }
            }

            $crate::bindings::connector::export_connector_world!(__TesseraConnector);
        };
    };
}
