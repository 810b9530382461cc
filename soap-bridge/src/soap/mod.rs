//! SOAP 1.1 RPC/encoded, as the original `MemcachedSOAPClass` and its
//! SOAP::Lite clients speak it. Pure functions, no I/O: [`parse`] reads
//! requests, [`encode`] writes responses, [`fault`] writes faults, [`wsdl`]
//! describes the service.

pub mod encode;
pub mod fault;
pub mod parse;
pub mod wsdl;

pub use fault::{Fault, FaultCode};

/// The service namespace (SOAP::Lite's `uri`).
pub const NS_SERVICE: &str = "urn:MemcachedSOAPClass";
/// SOAP 1.1 envelope namespace.
pub const NS_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.1 encoding namespace (`soapenc:Array`).
pub const NS_ENC: &str = "http://schemas.xmlsoap.org/soap/encoding/";
/// XML Schema namespace (`xsd:`).
pub const NS_XSD: &str = "http://www.w3.org/2001/XMLSchema";
/// XML Schema instance namespace (`xsi:`).
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// Apache SOAP's namespace for `apachens:Map`.
pub const NS_APACHE: &str = "http://xml.apache.org/xml-soap";

/// The XML Schema instance namespaces SOAP toolkits use (2001, and the 1999
/// draft older SOAP::Lite versions send).
pub(crate) fn is_xsi(ns: &str) -> bool {
    matches!(
        ns,
        NS_XSI
            | "http://www.w3.org/1999/XMLSchema-instance"
            | "http://www.w3.org/2000/10/XMLSchema-instance"
    )
}
