//! The WSDL served at `GET /?wsdl`: SOAP 1.1, RPC/encoded, namespace
//! `urn:MemcachedSOAPClass`, every operation of the bridge.
//!
//! The original shipped none; clients generated from this one (zeep, Java,
//! .NET) see sessions as `apachens:Map` (items of key and value), which the
//! bridge accepts as parameters; results are typed `xsd:anyType`, because a
//! session comes back as a struct or a Map depending on its keys, exactly as
//! SOAP::Lite clients expect. `setSession` is described with one Map
//! parameter; SOAP::Lite clients keep sending the original's flat
//! `key, value, key, value` list, which the bridge accepts too.

/// One operation of the WSDL: name, parameters as (name, type), result type.
pub type Operation = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// The operations the WSDL describes.
pub const OPERATIONS: &[Operation] = &[
    ("status", &[], "xsd:string"),
    ("getSession", &[("id", "xsd:string")], "xsd:anyType"),
    ("setSession", &[("session", "apachens:Map")], "xsd:string"),
    (
        "updateSession",
        &[("id", "xsd:string"), ("fields", "apachens:Map")],
        "xsd:boolean",
    ),
    ("deleteSession", &[("id", "xsd:string")], "xsd:boolean"),
    ("touchSession", &[("id", "xsd:string")], "xsd:boolean"),
    ("findByPrincipal", &[("uid", "xsd:string")], "xsd:anyType"),
];

/// The WSDL document, with `endpoint` as the service address.
pub fn wsdl(endpoint: &str) -> String {
    let endpoint = super::encode::escape_text(endpoint).replace('"', "&quot;");
    let mut messages = String::new();
    let mut port_ops = String::new();
    let mut binding_ops = String::new();
    for (name, params, result) in OPERATIONS {
        messages.push_str(&format!("  <message name=\"{name}Request\">\n"));
        for (p, t) in *params {
            messages.push_str(&format!("    <part name=\"{p}\" type=\"{t}\"/>\n"));
        }
        messages.push_str(&format!(
            "  </message>\n  <message name=\"{name}Response\">\n    <part name=\"result\" type=\"{result}\"/>\n  </message>\n"
        ));
        port_ops.push_str(&format!(
            "    <operation name=\"{name}\">\n      <input message=\"tns:{name}Request\"/>\n      <output message=\"tns:{name}Response\"/>\n    </operation>\n"
        ));
        binding_ops.push_str(&format!(
            "    <operation name=\"{name}\">\n      <soap:operation soapAction=\"urn:MemcachedSOAPClass#{name}\" style=\"rpc\"/>\n      \
             <input><soap:body use=\"encoded\" namespace=\"urn:MemcachedSOAPClass\" encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"/></input>\n      \
             <output><soap:body use=\"encoded\" namespace=\"urn:MemcachedSOAPClass\" encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"/></output>\n    </operation>\n"
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<definitions name="MemcachedSOAPClass"
  targetNamespace="urn:MemcachedSOAPClass"
  xmlns:tns="urn:MemcachedSOAPClass"
  xmlns:apachens="http://xml.apache.org/xml-soap"
  xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns="http://schemas.xmlsoap.org/wsdl/">
  <types>
    <xsd:schema targetNamespace="http://xml.apache.org/xml-soap">
      <xsd:import namespace="http://schemas.xmlsoap.org/soap/encoding/"/>
      <xsd:complexType name="mapItem">
        <xsd:sequence>
          <xsd:element name="key" type="xsd:string"/>
          <xsd:element name="value" type="xsd:anyType" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="Map">
        <xsd:sequence>
          <xsd:element name="item" type="apachens:mapItem" minOccurs="0" maxOccurs="unbounded"/>
        </xsd:sequence>
      </xsd:complexType>
    </xsd:schema>
  </types>
{messages}  <portType name="MemcachedSOAPPort">
{port_ops}  </portType>
  <binding name="MemcachedSOAPBinding" type="tns:MemcachedSOAPPort">
    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
{binding_ops}  </binding>
  <service name="MemcachedSOAPService">
    <port name="MemcachedSOAPPort" binding="tns:MemcachedSOAPBinding">
      <soap:address location="{endpoint}"/>
    </port>
  </service>
</definitions>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsdl_is_well_formed_and_complete() {
        let doc = wsdl("http://127.0.0.1:8080/?a&b");
        let root = crate::soap::parse::parse_tree(&doc).unwrap();
        assert_eq!(root.name, "definitions");
        for (name, _, _) in OPERATIONS {
            assert!(doc.contains(&format!("soapAction=\"urn:MemcachedSOAPClass#{name}\"")));
        }
        assert!(doc.contains("location=\"http://127.0.0.1:8080/?a&amp;b\""));
    }
}
