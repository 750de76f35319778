//! imaginary's query params (spec §6). CONTRACT: `Params::from_query(raw: &str) -> Result<Params, OpError>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {}
