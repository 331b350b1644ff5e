//! A small XML tree whose serialisation *is* its exclusive canonical form (Exclusive XML
//! Canonicalization 1.0, without comments): namespace declarations exactly where first
//! visibly used, attributes sorted, no self-closing tags, c14n escaping, no whitespace.
//! guise signs only XML it emits itself, so this is all the canonicalisation it needs.

use std::collections::BTreeMap;

pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Well-known prefixes for the namespaces guise writes.
fn namespace_of(prefix: &str) -> &'static str {
    match prefix {
        "samlp" => NS_SAMLP,
        "saml" => NS_SAML,
        "md" => NS_MD,
        "ds" => NS_DS,
        "saml1" => "urn:oasis:names:tc:SAML:1.0:assertion",
        "t" => "http://schemas.xmlsoap.org/ws/2005/02/trust",
        "wsp" => "http://schemas.xmlsoap.org/ws/2004/09/policy",
        "wsa" => "http://www.w3.org/2005/08/addressing",
        "fed" => "http://docs.oasis-open.org/wsfed/federation/200706",
        "xsi" => "http://www.w3.org/2001/XMLSchema-instance",
        "wsu" => "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
        "ec" => "http://www.w3.org/2001/10/xml-exc-c14n#",
        "soap" => "http://schemas.xmlsoap.org/soap/envelope/",
        _ => "",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element named `prefix:local` (the prefix must be one of the known ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub prefix: &'static str,
    pub local: &'static str,
    attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// Prefixes declared here although not visibly used (their use is in attribute
    /// values, e.g. `xsi:type="fed:…"`). A signature over such an element must name them
    /// in an InclusiveNamespaces PrefixList, so c14n renders them too.
    declare: Vec<&'static str>,
}

impl Element {
    pub fn new(prefix: &'static str, local: &'static str) -> Self {
        Self { prefix, local, attributes: Vec::new(), children: Vec::new(), declare: Vec::new() }
    }

    /// Declare `prefix` on this element (see `declare`).
    pub fn declare(mut self, prefix: &'static str) -> Self {
        self.declare.push(prefix);
        self
    }

    /// Prefixes declared without visible use anywhere in this subtree.
    pub fn inclusive_prefixes(&self) -> Vec<&'static str> {
        let mut out = self.declare.clone();
        for child in &self.children {
            if let Node::Element(e) = child {
                out.extend(e.inclusive_prefixes());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Add an unprefixed attribute (or `xsi:…`-style prefixed one).
    pub fn attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.push((name.to_owned(), value.into()));
        self
    }

    pub fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    pub fn children(mut self, children: impl IntoIterator<Item = Element>) -> Self {
        self.children.extend(children.into_iter().map(Node::Element));
        self
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// The value of an attribute, if set.
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Insert `child` at `index` among the element children.
    pub fn insert_child(&mut self, index: usize, child: Element) {
        let index = index.min(self.children.len());
        self.children.insert(index, Node::Element(child));
    }

    /// The canonical serialisation of this element as the apex of a subtree.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, &BTreeMap::new());
        out
    }

    fn write(&self, out: &mut String, in_scope: &BTreeMap<&'static str, &'static str>) {
        // Namespaces visibly used here: the element's prefix and its attributes' prefixes.
        let mut used: Vec<&'static str> = vec![self.prefix];
        for (name, _) in &self.attributes {
            if let Some((prefix, _)) = name.split_once(':') {
                let known =
                    ["samlp", "saml", "md", "ds", "saml1", "t", "wsp", "wsa", "fed", "xsi", "wsu", "ec", "soap"];
                if let Some(p) = known.iter().find(|k| **k == prefix) {
                    used.push(p);
                }
            }
        }
        used.extend(self.declare.iter().copied());
        used.sort_unstable();
        used.dedup();
        let mut scope = in_scope.clone();
        let mut declarations = Vec::new();
        for prefix in used {
            let uri = namespace_of(prefix);
            if scope.get(prefix) != Some(&uri) {
                scope.insert(prefix, uri);
                declarations.push((prefix, uri));
            }
        }
        out.push('<');
        out.push_str(self.prefix);
        out.push(':');
        out.push_str(self.local);
        for (prefix, uri) in &declarations {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
            escape_attr(out, uri);
            out.push('"');
        }
        // Unprefixed attributes first (by name), then prefixed ones by namespace URI, name.
        let mut attributes: Vec<(&str, &str, &str)> = self
            .attributes
            .iter()
            .map(|(name, value)| match name.split_once(':') {
                Some((prefix, local)) => (namespace_of(prefix), local, value.as_str()),
                None => ("", name.as_str(), value.as_str()),
            })
            .collect();
        attributes.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (uri, local, value) in attributes {
            out.push(' ');
            if !uri.is_empty() {
                let prefix = self
                    .attributes
                    .iter()
                    .find_map(|(n, _)| {
                        n.split_once(':').filter(|(p, l)| namespace_of(p) == uri && *l == local).map(|(p, _)| p)
                    })
                    .unwrap_or("");
                out.push_str(prefix);
                out.push(':');
            }
            out.push_str(local);
            out.push_str("=\"");
            escape_attr(out, value);
            out.push('"');
        }
        out.push('>');
        for child in &self.children {
            match child {
                Node::Element(e) => e.write(out, &scope),
                Node::Text(t) => escape_text(out, t),
            }
        }
        out.push_str("</");
        out.push_str(self.prefix);
        out.push(':');
        out.push_str(self.local);
        out.push('>');
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_declared_where_first_used_and_attributes_sorted() {
        let tree = Element::new("samlp", "Response")
            .attr("Version", "2.0")
            .attr("ID", "_1")
            .child(Element::new("saml", "Issuer").text("a&b<c>"))
            .child(Element::new("saml", "Assertion").attr("ID", "_2").child(Element::new("saml", "Issuer").text("x")));
        assert_eq!(
            tree.canonical(),
            concat!(
                r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_1" Version="2.0">"#,
                r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">a&amp;b&lt;c&gt;</saml:Issuer>"#,
                r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_2"><saml:Issuer>x</saml:Issuer></saml:Assertion>"#,
                r#"</samlp:Response>"#
            )
        );
    }

    #[test]
    fn attribute_values_are_escaped_for_c14n() {
        let e = Element::new("saml", "Attribute").attr("Name", "a\"b\n\t<&");
        assert!(e.canonical().contains(r#"Name="a&quot;b&#xA;&#x9;&lt;&amp;""#), "{}", e.canonical());
    }
}
