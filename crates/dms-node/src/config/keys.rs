//! The table of configuration keys: the single place that documents them.

use super::Error;

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct KeyDoc {
    /// Dotted key, `section.name`.
    pub key: &'static str,
    /// The form a value must have, in words.
    pub expected: &'static str,
    /// What the key does.
    pub doc: &'static str,
}

/// Every configuration key. A test checks that this table and [`super::Config`] agree.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "node.key",
        expected: "the name of a key in the keystore (see `dms key list`)",
        doc: "Keystore entry used as this node's identity: its DID, and its peer id on the network.",
    },
    KeyDoc {
        key: "node.shutdown_timeout",
        expected: "a duration such as 10s, 1m or 500ms",
        doc: "After SIGINT/SIGTERM, how long in-flight requests may take before the daemon exits anyway.",
    },
    KeyDoc {
        key: "node.benchmark_budget",
        expected: "a duration such as 15s (0s: no benchmark at onboarding)",
        doc: "Time budget of the CPU, memory and disk benchmarks run in the background when the machine is first onboarded (`dms benchmark` runs them on demand).",
    },
    KeyDoc {
        key: "deployment.bid_window",
        expected: "a duration such as 3s",
        doc: "Longest a bid window stays open when this node orchestrates. It closes earlier when every peer answered, or shortly after the bids allow a placement.",
    },
    KeyDoc {
        key: "deployment.shortlist",
        expected: "a number of providers, e.g. 1 (0: always broadcast)",
        doc: "When this node orchestrates: how many of the providers that advertised their capacity it asks first for each ensemble node (default 1, the best advertised), widening to twice as many when they refuse and broadcasting to every peer when the adverts run out. More asks fewer round trips after stale adverts at the cost of more messages and reservations per placement.",
    },
    KeyDoc {
        key: "deployment.advertise_every",
        expected: "a duration such as 10s (0s: never)",
        doc: "How often this node advertises its free resources, executors, place and price to orchestrators when nothing changes; it also advertises soon after they change. Without adverts it is asked only by broadcast rounds.",
    },
    KeyDoc {
        key: "deployment.default_timeout",
        expected: "a duration such as 2m",
        doc: "Placement deadline of a deployment when `dms deploy --timeout` is not given.",
    },
    KeyDoc {
        key: "deployment.max_reservation",
        expected: "a duration such as 30s",
        doc: "Longest this node holds the resources of a bid before the orchestrator commits it; then they are free again.",
    },
    KeyDoc {
        key: "deployment.require_contract",
        expected: "true or false",
        doc: "Refuse to bid (reason `contract_required`) on ensembles that reference no contract.",
    },
    KeyDoc {
        key: "deployment.price_per_hour",
        expected: "a number, 0 or more (0: free)",
        doc: "The price per hour this node asks in its bids; orchestrators prefer cheaper bids and honour the ensemble's max_price_per_hour.",
    },
    KeyDoc {
        key: "deployment.location",
        expected: "continent[/country[/city]] such as EU/DE/Berlin (codes as ensembles write them), or empty",
        doc: "Where this machine is, checked against the location accept/reject lists of ensemble nodes. Empty: not said, so nodes that accept only some places are not bid on.",
    },
    KeyDoc {
        key: "deployment.receipt_every",
        expected: "a duration such as 1m",
        doc: "How often an allocation this node runs under a contract signs a usage receipt for its requester (and one more when it ends).",
    },
    KeyDoc {
        key: "deployment.heartbeat_interval",
        expected: "a duration such as 1s",
        doc: "How often the allocations of deployments this node orchestrates send it a heartbeat.",
    },
    KeyDoc {
        key: "deployment.lost_after",
        expected: "a duration such as 5s (longer than heartbeat_interval)",
        doc: "How long a provider of this node's deployments may stay silent before it is asked directly and, if it does not answer while other peers do, declared lost: its allocations are placed elsewhere.",
    },
    KeyDoc {
        key: "deployment.stop_after",
        expected: "a duration such as 60s (longer than lost_after)",
        doc: "How long allocations of this node's deployments run on without an answer from this node before their providers stop them and free their resources (no orphans).",
    },
    KeyDoc {
        key: "deployment.public_address",
        expected: "an IP address or host name, or empty",
        doc: "The address users reach the ports this machine publishes for allocations at, shown in `dms deployments info`. Empty: the address of the interface the default route leaves by, else 127.0.0.1.",
    },
    KeyDoc {
        key: "deployment.attributes",
        expected: "key=value pairs separated by commas, or empty",
        doc: "Attributes this machine advertises in its bids beside the detected ones (os, arch, cpu.vendor, cpu.flag.<flag>, gpu.vendor, gpu.model, gpu.driver, gpu.cuda); ensemble nodes' `attributes` must match them exactly. A configured key overrides a detected one.",
    },
    KeyDoc {
        key: "deployment.log_cap",
        expected: "a size such as 16MiB",
        doc: "Most output kept per allocation on this provider for `dms deployments logs`, while it runs and after it ends (until its deployment is shut down). Beyond it the oldest output is dropped, and every read says how much.",
    },
    KeyDoc {
        key: "deployment.volumes_dir",
        expected: "a directory, or empty",
        doc: "Where allocations' volumes live on this provider (one directory per deployment and volume name; removed when the last allocation using it ends, and after a crash). Empty: `volumes` beside the store.",
    },
    KeyDoc {
        key: "deployment.bind_paths",
        expected: "absolute paths separated by commas, or empty",
        doc: "Host paths that ensembles' `bind` volumes may name (the path itself or below it). Empty: bind volumes are refused.",
    },
    KeyDoc {
        key: "storage.access_key_id",
        expected: "an S3 access key id, or empty",
        doc: "S3 credentials this node uses for ensembles' `storage` when `dms deploy` sends none (its AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come first). Used on this node only: providers get presigned URLs. Unlike credentials sent with a deployment, these serve deployments resumed after a restart.",
    },
    KeyDoc {
        key: "storage.secret_access_key",
        expected: "an S3 secret access key, or empty",
        doc: "The secret of storage.access_key_id; never printed by `dms config show` or `get`. Keep the config file readable by you only.",
    },
    KeyDoc {
        key: "storage.session_token",
        expected: "a session token, or empty",
        doc: "A session token for temporary storage credentials; never printed.",
    },
    KeyDoc {
        key: "subnet.enabled",
        expected: "true or false",
        doc: "Whether allocations on this provider may join deployments' private networks (an interface `dms0` in each allocation; needs root for CAP_NET_ADMIN). When false, or when the interface cannot be made, bids for subnet deployments are refused with reason `subnet`.",
    },
    KeyDoc {
        key: "subnet.listen",
        expected: "an address:port (UDP)",
        doc: "Where this provider's subnet endpoint listens: packets between allocations on different providers travel as QUIC datagrams to it, authenticated by the node's identity. Default 0.0.0.0:0: every address, and the port it had before (kept beside the store) or a free one.",
    },
    KeyDoc {
        key: "subnet.mtu",
        expected: "a whole number from 576 to 1400",
        doc: "The MTU of allocations' interfaces: at most what one QUIC datagram carries on a 1500-byte path (1400, the default). Packets larger than a path carries are answered with ICMP \"fragmentation needed\" so senders adapt.",
    },
    KeyDoc {
        key: "quotas.deployments_per_user",
        expected: "a whole number, 1 or more",
        doc: "Unfinished deployments one submitter (the DID that signs `dms deploy`) may have on this node at once; more are refused with `quota`.",
    },
    KeyDoc {
        key: "quotas.deployments",
        expected: "a whole number, 1 or more",
        doc: "Unfinished deployments of all submitters together this node orchestrates at once; more are refused with `quota`.",
    },
    KeyDoc {
        key: "quotas.keep_finished",
        expected: "a whole number (0: forget finished deployments at once)",
        doc: "Finished deployments (completed, failed, shut down) kept for `dms deployments status`; the oldest beyond are pruned.",
    },
    KeyDoc {
        key: "quotas.keep_finished_for",
        expected: "a duration such as 7d or 12h",
        doc: "Finished deployments older than this are pruned (checked every 10 minutes and at each submission).",
    },
    KeyDoc {
        key: "quotas.reservations_per_peer",
        expected: "a whole number, 1 or more",
        doc: "Reservations (made by bids, committed, or turned into allocations) one peer may hold on this node at once; its further bid requests are refused with `quota` until some end.",
    },
    KeyDoc {
        key: "api.addr",
        expected: "HOST:PORT with an IP address, e.g. 127.0.0.1:9999",
        doc: "Address of the local REST API. The CLI talks to the daemon here (override with --api-addr).",
    },
    KeyDoc {
        key: "api.allow_remote",
        expected: "true or false",
        doc: "Serve clients that are not on loopback. Off: they are refused even if api.addr is public. On: they must send `Authorization: Bearer <api.token>`.",
    },
    KeyDoc {
        key: "api.token",
        expected: "a secret string of at least 16 characters (or empty while api.allow_remote is false)",
        doc: "Bearer token remote clients must present when api.allow_remote is true. Loopback clients never need it.",
    },
    KeyDoc {
        key: "api.request_timeout",
        expected: "a duration such as 30s or 2m",
        doc: "Longest time one API request may take before it is answered with 408.",
    },
    KeyDoc {
        key: "api.max_body_bytes",
        expected: "a positive whole number of bytes",
        doc: "Largest API request body accepted.",
    },
    KeyDoc {
        key: "api.socket",
        expected: "a file path, empty ($DMS_HOME/api.sock) or off",
        doc: "Unix socket the API also serves, readable and writable by the daemon's user only (or api.socket_group). The CLI uses it when no --api-addr is given; its clients need no token.",
    },
    KeyDoc {
        key: "api.socket_group",
        expected: "a group name or id, or empty",
        doc: "Members of this group may use the API socket too (mode 0660, group set). Empty: only the daemon's user and root. Put the socket where the group can reach it (api.socket), since $DMS_HOME is private.",
    },
    KeyDoc {
        key: "network.listen",
        expected: "a list of multiaddrs, e.g. [\"/ip4/0.0.0.0/tcp/9000\", \"/ip4/0.0.0.0/udp/9000/quic-v1\"]",
        doc: "Where the node listens for peers (override with dms run --listen).",
    },
    KeyDoc {
        key: "network.bootstrap",
        expected: "a list of multiaddrs ending in /p2p/<peer id>",
        doc: "Peers to join the network through at start (override with dms run --bootstrap).",
    },
    KeyDoc {
        key: "network.mdns",
        expected: "true or false",
        doc: "Find peers on the local network with mDNS.",
    },
    KeyDoc {
        key: "network.relay_service",
        expected: "true or false",
        doc: "Relay connections for peers that cannot be reached directly (uses bandwidth).",
    },
    KeyDoc {
        key: "network.relays",
        expected: "a list of multiaddrs ending in /p2p/<peer id> (nodes with network.relay_service = true)",
        doc: "Relays this node stays reachable through when peers cannot dial it (behind NAT or a firewall): it keeps a reservation on each and is dialable at <relay>/p2p-circuit/p2p/<its peer id>; direct connections are then tried by hole punching (DCUtR). `dms peers list` says which peers are reached directly and which through a relay.",
    },
    KeyDoc {
        key: "network.max_message_bytes",
        expected: "a positive whole number of bytes",
        doc: "Largest direct message accepted from a peer; larger frames are refused unread.",
    },
    KeyDoc {
        key: "store.path",
        expected: "a file path; relative paths are under the dms home",
        doc: "The embedded database file (redb).",
    },
    KeyDoc {
        key: "log.level",
        expected: "a tracing filter such as info, debug or dms_node=debug,info",
        doc: "Which log lines are written. RUST_LOG, when set, wins.",
    },
    KeyDoc {
        key: "log.format",
        expected: "text or json",
        doc: "Log line format: text for people, json for log shippers.",
    },
    KeyDoc {
        key: "telemetry.elasticsearch_url",
        expected: "an http:// URL such as http://127.0.0.1:9200, or empty (no shipping)",
        doc: "Where events (deployment and allocation states, bids, refusals, executor errors, peers) are shipped with the `_bulk` API, in batches, retried while the server is down; a dead or slow server never slows the node (events that do not fit its bounded queue are dropped and counted).",
    },
    KeyDoc {
        key: "telemetry.elasticsearch_index",
        expected: "an index name (lower case, no spaces)",
        doc: "The index events are written to; the index template shipped with dms is installed for `<index>*` before the first batch.",
    },
    KeyDoc {
        key: "telemetry.otlp_endpoint",
        expected: "an http:// URL such as http://127.0.0.1:4318 (OTLP/HTTP), or empty (no export)",
        doc: "Where traces, logs and metrics are exported with OTLP/HTTP (protobuf; /v1/traces, /v1/logs, /v1/metrics under it). With it set, one deployment is one trace across every node that worked on it.",
    },
    KeyDoc {
        key: "telemetry.service_name",
        expected: "a name",
        doc: "The `service.name` of exported traces, logs and metrics.",
    },
    KeyDoc {
        key: "telemetry.events_max",
        expected: "a whole number, 1 or more",
        doc: "Most events the node keeps in its store for `dms events` (the oldest go first).",
    },
    KeyDoc {
        key: "telemetry.events_retention",
        expected: "a duration such as 7d or 12h",
        doc: "Events older than this are removed from the node's store.",
    },
    KeyDoc {
        key: "vm.enabled",
        expected: "true or false",
        doc: "Run VM allocations (`executor: vm`) when a hypervisor is found at start; `dms doctor` says which one and with what acceleration.",
    },
    KeyDoc {
        key: "vm.backend",
        expected: "auto, qemu or firecracker",
        doc: "The hypervisor: auto takes Firecracker when it is installed and /dev/kvm opens, else QEMU's microvm machine (with KVM when a probe VM comes up, TCG otherwise).",
    },
    KeyDoc {
        key: "vm.qemu",
        expected: "a path, or empty",
        doc: "QEMU's program; empty: qemu-system-x86_64 on PATH.",
    },
    KeyDoc {
        key: "vm.firecracker",
        expected: "a path, or empty",
        doc: "Firecracker's program; empty: firecracker on PATH.",
    },
];

/// Finds a key, or says which known key it most resembles.
pub fn lookup(key: &str) -> Result<&'static KeyDoc, Error> {
    KEYS.iter().find(|k| k.key == key).ok_or_else(|| {
        let suggestion = KEYS
            .iter()
            .map(|k| (strsim::jaro_winkler(k.key, key), k.key))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k.to_string());
        Error::UnknownKey { key: key.to_string(), suggestion }
    })
}

/// The environment variable overriding `key`: `DMS_<SECTION>_<KEY>`, upper case.
pub fn env_var(key: &str) -> String {
    format!("DMS_{}", key.replace('.', "_").to_ascii_uppercase())
}
