//! Where a job's HTTP may go: public unicast addresses only, unless the operator allows more.
//!
//! A job names its integration's base URL itself (a literal, or `env("…")`), so without a policy
//! a tenant could point it at the host's own API on loopback, at the cloud's metadata service
//! (`169.254.169.254`), at a database on the private network, or at any service of the machine.
//! The policy ([`EgressPolicy`]) refuses every address that is not public unicast (see
//! [`classify`]) and the host's own addresses, and lets through what the operator's allow list
//! names, with one list for tenants' jobs (`CODEAI_EGRESS_ALLOW`) and one for the operator's own
//! jobs (`CODEAI_OPERATOR_EGRESS_ALLOW`), both comma-separated CIDRs or addresses.
//!
//! The address is checked where the connection is made, not where the URL is read: the HTTP
//! client resolves names with [`Resolver`], which drops refused addresses (so a name cannot be
//! rebound to loopback between a check and the connect), and an IP-literal host, which the client
//! never resolves, is checked by [`EgressPolicy::check_url`] before the request is sent. The client
//! uses no proxy and follows no redirect.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// The variable holding the tenants' allow list.
pub const TENANT_ALLOW_VAR: &str = "CODEAI_EGRESS_ALLOW";
/// The variable holding the allow list of the operator's own jobs.
pub const OPERATOR_ALLOW_VAR: &str = "CODEAI_OPERATOR_EGRESS_ALLOW";

/// Why an address is not a public unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// `0.0.0.0`, `::`: connecting to it reaches the machine itself.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    Shared,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `0.0.0.0/8`: "this network".
    ThisNetwork,
    /// `fc00::/7` (unique local).
    UniqueLocal,
    /// `fec0::/10` (deprecated site-local).
    SiteLocal,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Everything else that is not globally routable unicast: `240.0.0.0/4`, `192.0.0.0/24`,
    /// `192.88.99.0/24`, IPv6 outside `2000::/3`, `2001::/23`, `64:ff9b:1::/48`.
    Reserved,
    /// One of the addresses of the machine the host runs on.
    HostOwn,
}

impl AddressClass {
    /// The class in words, with its article: "a loopback address".
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private (RFC 1918) address",
            AddressClass::Shared => "a shared (carrier-grade NAT) address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "the broadcast address",
            AddressClass::ThisNetwork => "a \"this network\" (0.0.0.0/8) address",
            AddressClass::UniqueLocal => "a unique local (fc00::/7) address",
            AddressClass::SiteLocal => "a site-local (fec0::/10) address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
            AddressClass::Reserved => "a reserved address",
            AddressClass::HostOwn => "an address of this host",
        }
    }
}

/// The class of a non-public address, or `None` for a public unicast one. An IPv4 address
/// embedded in IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) is judged by the IPv4 address it leads to.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    Some(match ip.octets() {
        [0, 0, 0, 0] => Unspecified,
        [0, ..] => ThisNetwork,
        [127, ..] => Loopback,
        [10, ..] | [192, 168, ..] => Private,
        [172, b, ..] if (16..32).contains(&b) => Private,
        [100, b, ..] if (64..128).contains(&b) => Shared,
        [169, 254, ..] => LinkLocal,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [198, 18 | 19, ..] => Benchmarking,
        // IETF protocol assignments; the deprecated 6to4 relay anycast.
        [192, 0, 0, _] | [192, 88, 99, _] => Reserved,
        [255, 255, 255, 255] => Broadcast,
        [224..=239, ..] => Multicast,
        [240..=255, ..] => Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address leads to, for the forms that embed one.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, but not :: and ::1).
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(tail(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => Some(tail(hi, lo)),
        // NAT64, the well-known prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(tail(hi, lo)),
        // 6to4: 2002:AABB:CCDD::/48.
        [0x2002, hi, lo, ..] => Some(tail(hi, lo)),
        _ => None,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        if let Some(class) = classify_v4(v4) {
            return Some(class);
        }
    }
    let s = ip.segments();
    Some(match s[0] {
        0xff00..=0xffff => Multicast,
        0xfe80..=0xfebf => LinkLocal,
        0xfec0..=0xfeff => SiteLocal,
        0xfc00..=0xfdff => UniqueLocal,
        0x2001 if s[1] == 0x0db8 => Documentation,
        0x3fff if s[1] < 0x1000 => Documentation,
        0x2001 if s[1] == 2 && s[2] == 0 => Benchmarking,
        // IETF protocol assignments (Teredo, ORCHID, …).
        0x2001 if s[1] < 0x0200 => Reserved,
        // Global unicast is 2000::/3; the rest (v4-compatible, local-use NAT64, discard, SRv6,
        // unassigned) is not routable on the internet. Mapped, NAT64 and 6to4 addresses whose
        // IPv4 address is public were judged by it above.
        0x2000..=0x3fff => return None,
        _ if s[..6] == [0, 0, 0, 0, 0, 0xffff] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => {
            return None
        }
        _ => Reserved,
    })
}

/// Ranges the operator allows despite the policy: comma-separated CIDRs (`10.1.0.0/16`) or
/// single addresses (`127.0.0.1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// Nothing allowed beyond public addresses.
    pub fn none() -> AllowList {
        AllowList(Vec::new())
    }

    /// Reads `var` from the process environment; unset or empty is [`AllowList::none`].
    pub fn from_env(var: &str) -> Result<AllowList, String> {
        match std::env::var(var) {
            Ok(text) => text.parse().map_err(|e| {
                format!("{var}=`{text}`: {e} (expected CIDRs like `10.1.0.0/16,127.0.0.1/32`)")
            }),
            Err(_) => Ok(AllowList::none()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True if `ip`, or the IPv4 address it embeds, is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

impl FromStr for AllowList {
    type Err = String;

    fn from_str(text: &str) -> Result<AllowList, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("`{item}` is not a CIDR or an IP address")),
                },
            };
            nets.push(net);
        }
        Ok(AllowList(nets))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&items.join(","))
    }
}

/// The egress configuration of a host: the two allow lists and the host's own addresses.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Allowed for tenants' jobs (`CODEAI_EGRESS_ALLOW`, default none).
    pub tenants: AllowList,
    /// Allowed for the operator's own jobs (`CODEAI_OPERATOR_EGRESS_ALLOW`, default none).
    pub operator: AllowList,
    /// The machine's addresses (its interfaces', and the API's listen address when it is a
    /// specific one), refused even when public: a job must not reach the host's own services.
    pub own: Vec<IpAddr>,
}

impl Default for EgressConfig {
    /// No allow list; the interfaces' addresses as the host's own.
    fn default() -> EgressConfig {
        EgressConfig {
            tenants: AllowList::none(),
            operator: AllowList::none(),
            own: interface_addresses(),
        }
    }
}

impl EgressConfig {
    /// Reads both allow lists from the environment; a malformed entry is an error naming it.
    pub fn from_env() -> Result<EgressConfig, String> {
        Ok(EgressConfig {
            tenants: AllowList::from_env(TENANT_ALLOW_VAR)?,
            operator: AllowList::from_env(OPERATOR_ALLOW_VAR)?,
            own: interface_addresses(),
        })
    }

    /// Adds the API's listen address to the host's own (an unspecified one, `0.0.0.0`, stands
    /// for every interface, which are in already).
    pub fn listening_on(&mut self, addr: SocketAddr) {
        let ip = addr.ip();
        if !ip.is_unspecified() && !self.own.contains(&ip) {
            self.own.push(ip);
        }
    }

    /// The policy of the operator's jobs (`operator`) or of tenants' jobs.
    pub fn policy(&self, operator: bool) -> EgressPolicy {
        let (allow, variable) = if operator {
            (self.operator.clone(), OPERATOR_ALLOW_VAR)
        } else {
            (self.tenants.clone(), TENANT_ALLOW_VAR)
        };
        EgressPolicy {
            allow: Arc::new(allow),
            own: Arc::new(self.own.clone()),
            variable,
        }
    }
}

/// The addresses of the machine's network interfaces (none when they cannot be listed).
fn interface_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!("cannot list the network interfaces' addresses: {e}");
            Vec::new()
        }
    }
}

/// An address the policy refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The host name that resolved to it, if the URL had a name.
    pub name: Option<String>,
    pub ip: IpAddr,
    pub class: AddressClass,
    /// The variable that would allow it.
    pub variable: &'static str,
    /// A tenant's job learns nothing of what a name resolves to (it would map the operator's
    /// network, name by name): neither the address nor its class, nor whether the name resolves
    /// at all. `ip` and `class` are then not shown.
    pub hidden: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (true, Some(name)) = (self.hidden, &self.name) {
            return write!(
                f,
                "`{name}` does not resolve to an address a tenant's job may call (public \
                 addresses, and those the operator allows with {})",
                self.variable
            );
        }
        if let Some(name) = &self.name {
            write!(f, "`{name}` resolves only to refused addresses: ")?;
        }
        write!(f, "`{}` is {}", self.ip, self.class.describe())?;
        if let IpAddr::V6(v6) = self.ip {
            if let Some(v4) = embedded_v4(v6).filter(|v4| classify_v4(*v4).is_some()) {
                write!(f, " (it leads to the IPv4 address `{v4}`)")?;
            }
        }
        write!(
            f,
            "; the operator can allow it with {}={}",
            self.variable,
            IpNet::from(self.ip)
        )
    }
}

impl std::error::Error for Refused {}

/// Which addresses one kind of job (the operator's or tenants') may connect to.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    allow: Arc<AllowList>,
    own: Arc<Vec<IpAddr>>,
    variable: &'static str,
}

impl EgressPolicy {
    /// `Ok` for an address a job may connect to: allowed by the operator, or public and not
    /// the host's own.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow.contains(ip) {
            return Ok(());
        }
        let own = |ip: IpAddr| self.own.contains(&ip);
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let class = classify(ip)
            .or_else(|| (own(ip) || embedded.is_some_and(own)).then_some(AddressClass::HostOwn));
        match class {
            None => Ok(()),
            Some(class) => Err(Refused {
                name: None,
                ip,
                class,
                variable: self.variable,
                hidden: false,
            }),
        }
    }

    /// Checks a URL whose host is an IP address (the HTTP client does not resolve those, so
    /// [`Resolver`] never sees them); names are checked when they are resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            // The URL parser turns every IPv4 spelling into an address; parse again anyway.
            Some(url::Host::Domain(name)) => match name.parse::<IpAddr>() {
                Ok(ip) => self.check(ip),
                Err(_) => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Whether this is the tenants' policy, whose refusals of names say nothing of what they
    /// resolve to.
    fn hides_names(&self) -> bool {
        self.variable == TENANT_ALLOW_VAR
    }

    /// The resolver that applies this policy at connect time.
    pub fn resolver(&self) -> Resolver {
        Resolver {
            policy: self.clone(),
        }
    }
}

/// A DNS resolver for the HTTP client that keeps only the addresses the policy allows and fails
/// with [`Refused`] when none is left.
#[derive(Debug, Clone)]
pub struct Resolver {
    policy: EgressPolicy,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let lookup = tokio::net::lookup_host((host.clone(), 0)).await;
            let resolved = match lookup {
                Ok(resolved) => resolved,
                // A name that does not resolve looks like one that resolves to refused
                // addresses, so a tenant cannot tell the operator's internal names apart.
                Err(_) if policy.hides_names() => {
                    return Err(Box::new(Refused {
                        name: Some(host),
                        ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                        class: AddressClass::Unspecified,
                        variable: policy.variable,
                        hidden: true,
                    })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
                Err(e) => return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            };
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match refused {
                Some(mut refused) if allowed.is_empty() => {
                    refused.name = Some(host);
                    refused.hidden = policy.hides_names();
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The [`Refused`] somewhere in an error's chain of sources (the resolver's error comes back
/// wrapped by the HTTP client).
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

/// The HTTP client of one kind of job (the operator's, or tenants') and its egress policy.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: EgressPolicy,
}

impl Outbound {
    /// A client for integration calls: no redirects, no proxy, TLS through rustls, and names
    /// resolved by the policy's resolver.
    pub fn new(policy: EgressPolicy) -> Outbound {
        // Installs the process's TLS provider as a side effect.
        let _ = crate::notify::http_client();
        let client = reqwest::Client::builder()
            .user_agent(concat!("codeai-jobs/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(policy.resolver())
            .build()
            .expect("an HTTP client with rustls, a resolver and no proxy always builds");
        Outbound { client, policy }
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// The client, whose connections the policy's resolver checks.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(address: &str, expected: Option<AddressClass>) {
        let ip: IpAddr = address.parse().unwrap();
        assert_eq!(classify(ip), expected, "{address}");
    }

    #[test]
    fn addresses_are_classified() {
        use AddressClass::*;
        let table = [
            // Public unicast.
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("192.0.1.1", None),
            ("223.255.255.255", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("2002:808:808::1", None),
            // IPv4 that is not public.
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(ThisNetwork)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("100.64.0.1", Some(Shared)),
            ("100.127.255.255", Some(Shared)),
            ("169.254.169.254", Some(LinkLocal)),
            ("192.0.0.170", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("192.88.99.1", Some(Reserved)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            // IPv6 that is not public.
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001::1", Some(Reserved)),
            ("64:ff9b:1::1", Some(Reserved)),
            ("100::1", Some(Reserved)),
            ("5f00::1", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            // IPv4 embedded in IPv6, judged by the IPv4 address.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::127.0.0.1", Some(Loopback)),
            ("::8.8.8.8", Some(Reserved)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a00:1::1", Some(Private)),
            ("2002:c0a8:101::1", Some(Private)),
        ];
        for (address, expected) in table {
            check(address, expected);
        }
    }

    #[test]
    fn the_allow_list_overrides_and_the_host_own_addresses_are_refused() {
        let config = EgressConfig {
            tenants: "127.0.0.1/32, 10.1.0.0/16".parse().unwrap(),
            operator: AllowList::none(),
            own: vec!["203.0.114.7".parse().unwrap()],
        };
        let tenants = config.policy(false);
        for ok in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "8.8.8.8",
            "203.0.114.8",
        ] {
            assert_eq!(tenants.check(ok.parse().unwrap()), Ok(()), "{ok}");
        }
        let refused = tenants.check("127.0.0.2".parse().unwrap()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "`127.0.0.2` is a loopback address; the operator can allow it with \
             CODEAI_EGRESS_ALLOW=127.0.0.2/32"
        );
        let own = tenants.check("203.0.114.7".parse().unwrap()).unwrap_err();
        assert_eq!(own.class, AddressClass::HostOwn);
        let own = tenants.check("::ffff:203.0.114.7".parse().unwrap());
        assert_eq!(own.unwrap_err().class, AddressClass::HostOwn);
        let operator = config.policy(true);
        let refused = operator.check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(refused.variable, OPERATOR_ALLOW_VAR);
        let mapped = operator.check("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(
            mapped.unwrap_err().to_string(),
            "`::ffff:127.0.0.1` is a loopback address (it leads to the IPv4 address \
             `127.0.0.1`); the operator can allow it with \
             CODEAI_OPERATOR_EGRESS_ALLOW=::ffff:127.0.0.1/128"
        );
    }

    #[test]
    fn allow_lists_parse_or_name_the_bad_entry() {
        let list: AllowList = " 127.0.0.1/32,10.1.2.3/16 ,::1, 192.168.0.7"
            .parse()
            .unwrap();
        assert_eq!(
            list.to_string(),
            "127.0.0.1/32,10.1.0.0/16,::1/128,192.168.0.7/32"
        );
        assert_eq!("".parse::<AllowList>().unwrap(), AllowList::none());
        assert_eq!(
            "10.0.0.0/8,localhost".parse::<AllowList>().unwrap_err(),
            "`localhost` is not a CIDR or an IP address"
        );
        assert!("10.0.0.0/33".parse::<AllowList>().is_err());
    }

    #[test]
    fn ip_literal_urls_are_checked_in_every_spelling() {
        let policy = EgressConfig {
            tenants: AllowList::none(),
            operator: AllowList::none(),
            own: Vec::new(),
        }
        .policy(false);
        for url in [
            "http://127.0.0.1:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert!(policy.check_url(&parsed).is_err(), "{url} -> {parsed}");
        }
        let public = reqwest::Url::parse("https://93.184.216.34/x").unwrap();
        assert_eq!(policy.check_url(&public), Ok(()));
        let named = reqwest::Url::parse("https://example.com/x").unwrap();
        assert_eq!(policy.check_url(&named), Ok(()));
    }
}
