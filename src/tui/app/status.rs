//! The status bar's state: the connection, the server address, our name, the
//! room's size and whether this process runs the server. It knows nothing of
//! keys or drawing.

use std::time::Instant;

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConnState {
    Connecting { attempt: u32 },
    Connected,
    Disconnected { reason: String, retry_at: Instant },
    Closed,
}

/// How the connection is protected, when it is TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsBadge {
    /// The server's certificate is checked.
    Verified,
    /// `--tls-insecure`: encrypted, but anyone could be the server.
    Insecure,
}

/// What the status bar shows.
#[derive(Debug)]
pub(crate) struct Status {
    /// The address as the user gave it.
    server: String,
    /// Our name as the server knows it (it may add a suffix).
    name: String,
    conn: ConnState,
    /// People in the room, as the server last said.
    user_count: usize,
    /// Set when this process runs the server itself.
    local_server: Option<String>,
    /// Whether the server we last connected to runs inside a chat TUI: when
    /// it goes away, this TUI may take its place.
    server_embedded: bool,
    /// Set when the connection is TLS (`chat --tls`).
    tls: Option<TlsBadge>,
    /// The server is a seed-style plain server: no room, no names.
    plain: bool,
    /// Set (to the server's node name) while the server says its cluster
    /// link is down: the room then holds only that node's users.
    cluster_down: Option<String>,
}

impl Status {
    pub(crate) fn new(server: &str, name: &str) -> Status {
        Status {
            server: server.to_string(),
            name: name.to_string(),
            conn: ConnState::Connecting { attempt: 1 },
            user_count: 0,
            local_server: None,
            server_embedded: false,
            tls: None,
            plain: false,
            cluster_down: None,
        }
    }

    pub(crate) fn tls(&self) -> Option<TlsBadge> {
        self.tls
    }

    pub(crate) fn set_tls(&mut self, badge: TlsBadge) {
        self.tls = Some(badge);
    }

    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn conn(&self) -> &ConnState {
        &self.conn
    }

    pub(crate) fn user_count(&self) -> usize {
        self.user_count
    }

    pub(crate) fn local_server(&self) -> Option<&str> {
        self.local_server.as_deref()
    }

    pub(crate) fn server_embedded(&self) -> bool {
        self.server_embedded
    }

    pub(crate) fn plain(&self) -> bool {
        self.plain
    }

    pub(crate) fn set_plain(&mut self, plain: bool) {
        self.plain = plain;
    }

    pub(crate) fn set_conn(&mut self, conn: ConnState) {
        self.conn = conn;
    }

    pub(crate) fn set_name(&mut self, name: String) {
        self.name = name;
    }

    pub(crate) fn set_user_count(&mut self, n: usize) {
        self.user_count = n;
    }

    pub(crate) fn set_local_server(&mut self, note: &str) {
        self.local_server = Some(note.to_string());
    }

    pub(crate) fn set_server_embedded(&mut self, embedded: bool) {
        self.server_embedded = embedded;
    }

    pub(crate) fn cluster_down(&self) -> Option<&str> {
        self.cluster_down.as_deref()
    }

    pub(crate) fn set_cluster_link(&mut self, up: bool, node: String) {
        self.cluster_down = (!up).then_some(node);
    }
}
