//! SOAP 1.1 faults: `soap:Client` for what the caller must fix (malformed XML,
//! unknown operation, invalid id, a mismatched SOAPAction), `soap:Server` for
//! what failed on our side (the store). Both go out with HTTP 500, as SOAP 1.1
//! says and as the original did.

use super::encode::{envelope, escape_text};

/// Whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// The request is wrong; resending it unchanged will fail again.
    Client,
    /// The service failed (store down, timeout); a retry may succeed.
    Server,
}

/// A SOAP fault: a code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `soap:Client` or `soap:Server`.
    pub code: FaultCode,
    /// The `faultstring`.
    pub message: String,
}

impl Fault {
    /// A `soap:Client` fault.
    pub fn client(message: impl Into<String>) -> Self {
        Fault {
            code: FaultCode::Client,
            message: message.into(),
        }
    }

    /// A `soap:Server` fault.
    pub fn server(message: impl Into<String>) -> Self {
        Fault {
            code: FaultCode::Server,
            message: message.into(),
        }
    }

    /// The whole response body.
    pub fn to_xml(&self) -> String {
        let code = match self.code {
            FaultCode::Client => "soap:Client",
            FaultCode::Server => "soap:Server",
        };
        envelope(
            &format!(
                "<soap:Fault><faultcode>{code}</faultcode><faultstring>{}</faultstring></soap:Fault>",
                escape_text(&self.message)
            ),
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_shape() {
        let xml = Fault::client("Failed to locate method (x<y)").to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope "));
        assert!(xml.contains(
            "<soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Failed to locate method (x&lt;y)</faultstring></soap:Fault></soap:Body>"
        ));
        assert!(Fault::server("x").to_xml().contains("soap:Server"));
    }
}
