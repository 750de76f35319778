//! Executes a [`Plan`](super::Plan) with libvips.
//! CONTRACT (filled in by the ops-vips work):
//! pub struct Header { pub width: u32, pub height: u32, pub format: ImageType }
//! pub fn probe(input: &[u8]) -> Result<Header, OpError>      // header only, no pixel decode
//! pub struct Output { pub bytes: Vec<u8>, pub mime: &'static str, pub format: Option<ImageType>, pub width: u32, pub height: u32 }
//! pub fn run(plan: &Plan, input: &[u8], watermarks: &[(String, Vec<u8>)]) -> Result<Output, OpError>
use super::format::ImageType;
pub struct Header { pub width: u32, pub height: u32, pub format: ImageType }
pub struct Output { pub bytes: Vec<u8>, pub mime: &'static str, pub format: Option<ImageType>, pub width: u32, pub height: u32 }
pub fn probe(_input: &[u8]) -> Result<Header, super::OpError> { unimplemented!() }
pub fn run(_plan: &super::Plan, _input: &[u8], _watermarks: &[(String, Vec<u8>)]) -> Result<Output, super::OpError> { unimplemented!() }
