//! The SCIM attribute definitions Janua serves (RFC 7643): the single source of truth for the
//! `/Schemas` and `/ResourceTypes` documents, for validation, PATCH and projection.

mod documents;

pub use documents::{kind_name, resource_type_document, schema_document};

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Complex,
    Reference,
    DateTime,
    Integer,
}

/// When an attribute may be written (RFC 7643 §7, `mutability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §7, `returned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// How the service provider enforces uniqueness (RFC 7643 §7, `uniqueness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// One attribute or sub-attribute definition (RFC 7643 §7).
#[derive(Debug)]
pub struct Attribute {
    /// The canonical spelling, the one stored and returned.
    pub name: &'static str,
    pub kind: Kind,
    /// Multi-valued: an array of values.
    pub multi: bool,
    /// Must be present in every resource (for a sub-attribute: in every value of its parent).
    pub required: bool,
    /// String comparisons are case-sensitive.
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    /// Suggested values, published as `canonicalValues`.
    pub canonical: &'static [&'static str],
    /// When true, only the `canonical` values are accepted (matched case-insensitively and stored
    /// in their canonical spelling). Not published: RFC 7643 has no such characteristic.
    pub strict: bool,
    /// For references: the resource types (`User`, `Group`) or `external`/`uri`.
    pub reference_types: &'static [&'static str],
    /// The sub-attributes of a complex attribute; empty otherwise.
    pub sub: &'static [Attribute],
    /// Largest number of values a multi-valued attribute may hold.
    pub max_items: usize,
    /// Published as `description`.
    pub description: &'static str,
}

/// Most values a multi-valued attribute holds, unless its definition says otherwise.
pub const DEFAULT_MAX_ITEMS: usize = 100;

/// Most characters a string or reference value holds.
pub const MAX_STRING_CHARS: usize = 1024;

impl Attribute {
    /// A single-valued, optional, readWrite, case-insensitive string returned by default.
    const fn string(name: &'static str, description: &'static str) -> Attribute {
        Attribute {
            name,
            kind: Kind::String,
            multi: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical: &[],
            strict: false,
            reference_types: &[],
            sub: &[],
            max_items: DEFAULT_MAX_ITEMS,
            description,
        }
    }

    const fn boolean(name: &'static str, description: &'static str) -> Attribute {
        Attribute { kind: Kind::Boolean, ..Attribute::string(name, description) }
    }

    const fn date_time(name: &'static str, description: &'static str) -> Attribute {
        Attribute { kind: Kind::DateTime, ..Attribute::string(name, description) }
    }

    /// A case-exact reference to resources of the given types.
    const fn reference(
        name: &'static str,
        types: &'static [&'static str],
        description: &'static str,
    ) -> Attribute {
        Attribute {
            kind: Kind::Reference,
            case_exact: true,
            reference_types: types,
            ..Attribute::string(name, description)
        }
    }

    const fn complex(name: &'static str, sub: &'static [Attribute], description: &'static str) -> Attribute {
        Attribute { kind: Kind::Complex, sub, ..Attribute::string(name, description) }
    }

    const fn multi(self) -> Attribute {
        Attribute { multi: true, ..self }
    }

    const fn required(self) -> Attribute {
        Attribute { required: true, ..self }
    }

    const fn case_exact(self) -> Attribute {
        Attribute { case_exact: true, ..self }
    }

    const fn read_only(self) -> Attribute {
        Attribute { mutability: Mutability::ReadOnly, ..self }
    }

    const fn immutable(self) -> Attribute {
        Attribute { mutability: Mutability::Immutable, ..self }
    }

    const fn always(self) -> Attribute {
        Attribute { returned: Returned::Always, ..self }
    }

    const fn on_request(self) -> Attribute {
        Attribute { returned: Returned::Request, ..self }
    }

    const fn unique(self, uniqueness: Uniqueness) -> Attribute {
        Attribute { uniqueness, ..self }
    }

    const fn canonical(self, values: &'static [&'static str]) -> Attribute {
        Attribute { canonical: values, ..self }
    }

    const fn strict(self) -> Attribute {
        Attribute { strict: true, ..self }
    }

    const fn max_items(self, max_items: usize) -> Attribute {
        Attribute { max_items, ..self }
    }

    /// True when clients can never write this attribute.
    pub fn is_read_only(&self) -> bool {
        self.mutability == Mutability::ReadOnly
    }
}

/// A schema: a URN and its attributes (RFC 7643 §7).
#[derive(Debug)]
pub struct Schema {
    /// The schema's URN.
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// Its attributes (the common `id`, `externalId` and `meta` are not among them: see [`common`]).
    pub attributes: &'static [Attribute],
}

/// A resource type: its endpoint, core schema and extensions (RFC 7643 §6).
#[derive(Debug)]
pub struct ResourceType {
    /// `User` or `Group`, also the `meta.resourceType` of its resources.
    pub id: &'static str,
    /// `/Users` or `/Groups`, relative to the SCIM base URL.
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
    /// Attributes of RFC 7643's standard schema for this type that Janua does not store: accepted
    /// and dropped on input (Okta sends `password`, Entra sends `roles: []`, `title`, `phoneNumbers`…),
    /// never advertised, never returned.
    pub ignored: &'static [&'static str],
}

/// URN of the core User schema.
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// URN of the core Group schema.
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// URN of the enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// URN of Janua's Group extension.
pub const JANUA_GROUP_URN: &str = "urn:janua:params:scim:schemas:extension:2.0:Group";

/// The common attributes of every resource (RFC 7643 §3.1): not part of any schema's
/// `attributes`, but found by [`find`] through [`common`].
static COMMON: [Attribute; 3] = [
    Attribute::string("id", "A unique identifier for the resource, assigned by the service provider.")
        .case_exact()
        .read_only()
        .always()
        .unique(Uniqueness::Server),
    Attribute::string("externalId", "An identifier for the resource as defined by the provisioning client.")
        .case_exact(),
    Attribute::complex(
        "meta",
        &[
            Attribute::string("resourceType", "The name of the resource type of the resource.")
                .case_exact()
                .read_only(),
            Attribute::date_time("created", "When the resource was added to the service provider.")
                .read_only(),
            Attribute::date_time("lastModified", "When the resource was last updated.").read_only(),
            Attribute::reference("location", &["uri"], "The URI of the resource.").read_only(),
            Attribute::string("version", "The version (entity tag) of the resource.")
                .case_exact()
                .read_only(),
        ],
        "Resource metadata, assigned by the service provider.",
    )
    .read_only(),
];

/// The common attributes `id`, `externalId` and `meta`.
pub fn common() -> &'static [Attribute] {
    &COMMON
}

static USER_ATTRIBUTES: [Attribute; 7] = [
    Attribute::string(
        "userName",
        "Unique identifier for the User, used to sign in; unique among the organization's users.",
    )
    .required()
    .unique(Uniqueness::Server),
    Attribute::complex(
        "name",
        &[
            Attribute::string("formatted", "The full name, formatted for display."),
            Attribute::string("familyName", "The family name, or last name."),
            Attribute::string("givenName", "The given name, or first name."),
            Attribute::string("middleName", "The middle name(s)."),
            Attribute::string("honorificPrefix", "The honorific prefix(es), or title (e.g. 'Ms.')."),
            Attribute::string("honorificSuffix", "The honorific suffix(es) (e.g. 'III')."),
        ],
        "The components of the user's real name.",
    ),
    Attribute::string("displayName", "The name of the User, suitable for display to end-users."),
    Attribute::complex(
        "emails",
        &[
            Attribute::string("value", "Email address for the User."),
            Attribute::string("type", "The kind of address: 'work', 'home' or 'other'.")
                .canonical(&["work", "home", "other"]),
            Attribute::boolean("primary", "Whether this is the preferred address; true at most once."),
            Attribute::string("display", "A human-readable name for the address."),
        ],
        "Email addresses for the User.",
    )
    .multi(),
    Attribute::boolean("active", "Whether the User may sign in."),
    Attribute::string("locale", "The User's default location, e.g. 'en-US'."),
    Attribute::complex(
        "groups",
        &[
            Attribute::string("value", "The id of the Group.").read_only(),
            Attribute::reference("$ref", &["Group"], "The URI of the Group.").read_only(),
            Attribute::string("display", "The displayName of the Group.").read_only(),
            Attribute::string("type", "How the membership is held: 'direct'.")
                .canonical(&["direct"])
                .read_only(),
        ],
        "The groups the User belongs to, managed through the Group resource.",
    )
    .multi()
    .read_only(),
];

static ENTERPRISE_ATTRIBUTES: [Attribute; 3] = [
    Attribute::string("employeeNumber", "A string identifier of the user within the organization."),
    Attribute::string("department", "The name of the user's department."),
    Attribute::complex(
        "manager",
        &[
            Attribute::string("value", "The id of the manager's User resource."),
            Attribute::reference("$ref", &["User"], "The URI of the manager's User resource."),
            // returned=request: a server-filled value would break a client's round trip of `manager`
            Attribute::string("displayName", "The displayName of the manager.").read_only().on_request(),
        ],
        "The user's manager.",
    ),
];

static GROUP_ATTRIBUTES: [Attribute; 2] = [
    Attribute::string("displayName", "A human-readable name for the Group; unique in the organization.")
        .required()
        .unique(Uniqueness::Server),
    Attribute::complex(
        "members",
        &[
            Attribute::string("value", "The id of the member User.").required().immutable(),
            Attribute::reference("$ref", &["User"], "The URI of the member User.").immutable(),
            // returned=request: a server-filled value would break a client's round trip of `members`
            Attribute::string("display", "The displayName of the member.").read_only().on_request(),
            Attribute::string("type", "The type of the member: only 'User'.")
                .canonical(&["User"])
                .strict()
                .immutable(),
        ],
        "The members of the Group: Users only.",
    )
    .multi()
    .max_items(10_000),
];

static JANUA_GROUP_ATTRIBUTES: [Attribute; 1] = [Attribute::string(
    "role",
    "A member of this group holds this organization role in Janua: 'admin', 'member' or 'viewer'.",
)
.canonical(&["admin", "member", "viewer"])
.strict()];

/// The core User schema (RFC 7643 §4.1), restricted to what Janua stores.
pub static USER_SCHEMA: Schema =
    Schema { id: USER_URN, name: "User", description: "User Account", attributes: &USER_ATTRIBUTES };

/// The enterprise User extension (RFC 7643 §4.3), restricted to what Janua stores.
pub static ENTERPRISE_SCHEMA: Schema = Schema {
    id: ENTERPRISE_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &ENTERPRISE_ATTRIBUTES,
};

/// The core Group schema (RFC 7643 §4.2), restricted to what Janua stores.
pub static GROUP_SCHEMA: Schema =
    Schema { id: GROUP_URN, name: "Group", description: "Group", attributes: &GROUP_ATTRIBUTES };

/// Janua's Group extension: the organization role a group grants.
pub static JANUA_GROUP_SCHEMA: Schema = Schema {
    id: JANUA_GROUP_URN,
    name: "JanuaGroup",
    description: "Janua Group",
    attributes: &JANUA_GROUP_ATTRIBUTES,
};

/// The User resource type, served at `/Users`.
pub static USER: ResourceType = ResourceType {
    id: "User",
    endpoint: "/Users",
    description: "User Account",
    core: &USER_SCHEMA,
    extensions: &[&ENTERPRISE_SCHEMA],
    ignored: &[
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "timezone",
        "password",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "entitlements",
        "roles",
        "x509Certificates",
    ],
};

/// The Group resource type, served at `/Groups`.
pub static GROUP: ResourceType = ResourceType {
    id: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: &GROUP_SCHEMA,
    extensions: &[&JANUA_GROUP_SCHEMA],
    ignored: &[],
};

/// Every schema Janua serves at `/Schemas`, in that order.
pub fn schemas() -> [&'static Schema; 4] {
    [&USER_SCHEMA, &ENTERPRISE_SCHEMA, &GROUP_SCHEMA, &JANUA_GROUP_SCHEMA]
}

/// Every resource type Janua serves at `/ResourceTypes`, in that order.
pub fn resource_types() -> [&'static ResourceType; 2] {
    [&USER, &GROUP]
}

/// The schema with this URN, matched case-insensitively.
pub fn schema_by_id(id: &str) -> Option<&'static Schema> {
    schemas().into_iter().find(|s| s.id.eq_ignore_ascii_case(id))
}

/// The resource type with this id (`User`, `Group`), matched case-insensitively.
pub fn resource_type_by_id(id: &str) -> Option<&'static ResourceType> {
    resource_types().into_iter().find(|r| r.id.eq_ignore_ascii_case(id))
}

/// Finds an attribute by name, case-insensitively (top level or sub-attribute).
pub fn find(attrs: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_is_case_insensitive_and_returns_the_canonical_spelling() {
        let a = find(USER_SCHEMA.attributes, "USERNAME").expect("userName");
        assert_eq!(a.name, "userName");
        let emails = find(USER_SCHEMA.attributes, "emails").expect("emails");
        assert_eq!(find(emails.sub, "PRIMARY").map(|a| a.name), Some("primary"));
        assert!(find(USER_SCHEMA.attributes, "nickName").is_none());
        assert_eq!(find(common(), "externalid").map(|a| a.name), Some("externalId"));
    }

    #[test]
    fn lookups_by_id() {
        assert_eq!(schema_by_id(&ENTERPRISE_URN.to_lowercase()).map(|s| s.name), Some("EnterpriseUser"));
        assert_eq!(resource_type_by_id("group").map(|r| r.endpoint), Some("/Groups"));
        assert!(schema_by_id("urn:x").is_none());
    }
}
