//! The first, strict read of a Response (libxml2, before any signature is checked): its shape is
//! refused unless it is the one a genuine IdP sends — one `samlp:Response` holding one
//! `saml:Assertion`, each signed (if at all) by a `ds:Signature` child whose single Reference
//! names its parent's `ID`, and nothing a wrapping or comment trick needs (a second assertion
//! anywhere, a signature anywhere else, comments, processing instructions, entity references).
//!
//! Nothing read here is trusted as content: the Response's attributes count only when the
//! Response turns out to be signed, and the assertion is read again from the verified XML.

use libxml::tree::{Document, Node, NodeType};

use super::input::parse_strict;
use super::{NS_ASSERTION, NS_DSIG, NS_PROTOCOL, STATUS_SUCCESS};
use crate::domain::sso::SsoReason;

/// What the strict read found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The Response's `ID`.
    pub id: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    /// The Response's `Issuer` (optional on a Response).
    pub issuer: Option<String>,
    /// The one Assertion's `ID`.
    pub assertion_id: String,
    /// The Response has a `ds:Signature` child (not yet verified).
    pub response_signed: bool,
    /// The Assertion has a `ds:Signature` child (not yet verified).
    pub assertion_signed: bool,
}

/// Reads and checks the shape of a guarded Response document.
pub fn read_envelope(xml: &str) -> Result<Envelope, SsoReason> {
    let doc = parse_strict(xml).ok_or(SsoReason::MalformedResponse)?;
    let root = doc.get_root_element().ok_or(SsoReason::MalformedResponse)?;
    if !is(&root, NS_PROTOCOL, "Response") || root.get_attribute("Version").as_deref() != Some("2.0") {
        return Err(SsoReason::MalformedResponse);
    }
    let found = walk(&doc)?;

    // An IdP's refusal carries no assertion: say so before asking for one.
    let status = only_child(&root, NS_PROTOCOL, "Status")?.ok_or(SsoReason::MalformedResponse)?;
    let code = only_child(&status, NS_PROTOCOL, "StatusCode")?.ok_or(SsoReason::MalformedResponse)?;
    if code.get_attribute("Value").as_deref() != Some(STATUS_SUCCESS) {
        return Err(SsoReason::IdpError);
    }

    if found.encrypted || found.assertions.len() != 1 {
        return Err(SsoReason::MalformedResponse);
    }
    let assertion = &found.assertions[0];
    if !is(assertion, NS_ASSERTION, "Assertion") || !same(&assertion.get_parent(), &root) {
        return Err(SsoReason::MalformedResponse);
    }
    let id = non_empty(root.get_attribute("ID"))?;
    let assertion_id = non_empty(assertion.get_attribute("ID"))?;

    let (mut response_signed, mut assertion_signed) = (false, false);
    for signature in &found.signatures {
        let parent = signature.get_parent();
        let (flag, parent_id) = if same(&parent, &root) {
            (&mut response_signed, &id)
        } else if same(&parent, assertion) {
            (&mut assertion_signed, &assertion_id)
        } else {
            return Err(SsoReason::MalformedResponse);
        };
        if *flag || reference_uri(signature)? != format!("#{parent_id}") {
            return Err(SsoReason::MalformedResponse);
        }
        *flag = true;
    }

    let issuer = only_child(&root, NS_ASSERTION, "Issuer")?.map(|i| i.get_content().trim().to_owned());
    Ok(Envelope {
        id,
        destination: root.get_attribute("Destination"),
        in_response_to: root.get_attribute("InResponseTo"),
        issuer,
        assertion_id,
        response_signed,
        assertion_signed,
    })
}

/// Elements of interest anywhere in the document.
#[derive(Default)]
struct Found {
    /// Every element named `Assertion`, in any namespace.
    assertions: Vec<Node>,
    /// Any element named `EncryptedAssertion`.
    encrypted: bool,
    /// Every `ds:Signature`.
    signatures: Vec<Node>,
}

/// Visits every node; refuses comments, processing instructions, DTD and entity nodes, and
/// elements whose prefix is bound to no namespace.
fn walk(doc: &Document) -> Result<Found, SsoReason> {
    let mut found = Found::default();
    let mut stack = doc.as_node().get_child_nodes();
    while let Some(node) = stack.pop() {
        match node.get_type() {
            Some(NodeType::ElementNode) => {
                let name = node.get_name();
                if name.contains(':') {
                    return Err(SsoReason::MalformedResponse);
                }
                match name.as_str() {
                    "Assertion" => found.assertions.push(node.clone()),
                    "EncryptedAssertion" => found.encrypted = true,
                    "Signature" if ns(&node).as_deref() == Some(NS_DSIG) => {
                        found.signatures.push(node.clone())
                    }
                    _ => {}
                }
                stack.extend(node.get_child_nodes());
            }
            Some(NodeType::TextNode | NodeType::CDataSectionNode) => {}
            // The NameID comment trick (`user@evil.com<!---->.example.com`) and its kin: a genuine
            // assertion has no comments, so none is read around.
            Some(NodeType::CommentNode | NodeType::PiNode) => return Err(SsoReason::MalformedResponse),
            Some(
                NodeType::DTDNode
                | NodeType::DocumentTypeNode
                | NodeType::EntityRefNode
                | NodeType::EntityNode
                | NodeType::EntityDecl
                | NodeType::ElementDecl
                | NodeType::AttributeDecl
                | NodeType::NotationNode,
            ) => return Err(SsoReason::DoctypeForbidden),
            _ => return Err(SsoReason::MalformedResponse),
        }
    }
    Ok(found)
}

/// The URI of a signature's single Reference (`SignedInfo` with exactly one `Reference`).
fn reference_uri(signature: &Node) -> Result<String, SsoReason> {
    let signed_info = only_child(signature, NS_DSIG, "SignedInfo")?.ok_or(SsoReason::MalformedResponse)?;
    let reference = only_child(&signed_info, NS_DSIG, "Reference")?.ok_or(SsoReason::MalformedResponse)?;
    reference.get_attribute("URI").ok_or(SsoReason::MalformedResponse)
}

/// The child element `{ns}name` of `parent`, refusing two of them.
fn only_child(parent: &Node, ns: &str, name: &str) -> Result<Option<Node>, SsoReason> {
    let mut matching = parent.get_child_elements().into_iter().filter(|c| is(c, ns, name));
    let first = matching.next();
    if matching.next().is_some() {
        return Err(SsoReason::MalformedResponse);
    }
    Ok(first)
}

fn is(node: &Node, namespace: &str, name: &str) -> bool {
    node.get_name() == name && ns(node).as_deref() == Some(namespace)
}

fn ns(node: &Node) -> Option<String> {
    node.get_namespace().map(|n| n.get_href())
}

fn same(a: &Option<Node>, b: &Node) -> bool {
    a.as_ref().is_some_and(|a| a.node_ptr() == b.node_ptr())
}

fn non_empty(id: Option<String>) -> Result<String, SsoReason> {
    id.filter(|id| !id.is_empty()).ok_or(SsoReason::MalformedResponse)
}
