/**
 * Schema migrations for the embedded engine, applied in order inside one transaction each.
 * Never edit a released migration: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: foundation
  `
  CREATE TABLE devices (
    name TEXT PRIMARY KEY,
    tags TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    public_key TEXT,
    created_at INTEGER NOT NULL,
    enrolled_at INTEGER,
    last_seen_at INTEGER,
    agent_version TEXT,
    remote_address TEXT
  ) STRICT;

  CREATE TABLE enrollments (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL REFERENCES devices(name) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
  ) STRICT;
  CREATE INDEX enrollments_device ON enrollments(device);

  CREATE TABLE principals (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin','operator','approver','auditor')),
    created_at INTEGER NOT NULL,
    token_id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    token_created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    device TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','expired','revoked')),
    created_at INTEGER NOT NULL,
    request_expires_at INTEGER NOT NULL,
    reviewed_by TEXT,
    reviewed_at INTEGER,
    review_note TEXT,
    auto_approved INTEGER NOT NULL DEFAULT 0,
    grant_starts_at INTEGER,
    grant_ends_at INTEGER,
    ended_at INTEGER
  ) STRICT;
  CREATE INDEX access_status ON access_requests(status, created_at);
  CREATE INDEX access_principal_device ON access_requests(principal, device, status);

  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    device TEXT NOT NULL,
    target TEXT,
    client_address TEXT NOT NULL,
    grant_id TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    bytes_to_device INTEGER NOT NULL DEFAULT 0,
    bytes_from_device INTEGER NOT NULL DEFAULT 0,
    close_reason TEXT
  ) STRICT;
  CREATE INDEX sessions_open ON sessions(ended_at, started_at);

  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    device TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  ) STRICT;
  CREATE INDEX audit_ts ON audit(ts);
  CREATE INDEX audit_device ON audit(device, seq);
  CREATE INDEX audit_actor ON audit(actor, seq);
  CREATE INDEX audit_action ON audit(action, seq);
  -- Append-only inside the application; the hash chain catches anyone who bypasses this.
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
  `,
  // 2: edges (the agent's own identity); virtual devices belong to an edge
  `
  CREATE TABLE edges (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    signing_key TEXT NOT NULL,
    encryption_key TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    hostname TEXT,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    agent_version TEXT,
    remote_address TEXT
  ) STRICT;
  ALTER TABLE devices ADD COLUMN edge_id TEXT REFERENCES edges(id) ON DELETE SET NULL;
  CREATE INDEX devices_edge ON devices(edge_id);
  `,
  // 3: access sweeps and revocations by index (set-based, no scans); enrollments a newer one replaced
  `
  CREATE INDEX access_pending_expiry ON access_requests(request_expires_at) WHERE status = 'pending';
  CREATE INDEX access_open_grants ON access_requests(grant_ends_at) WHERE status = 'approved' AND ended_at IS NULL;
  CREATE INDEX access_open_by_principal ON access_requests(principal, status) WHERE ended_at IS NULL;
  CREATE INDEX access_open_by_device ON access_requests(device, status) WHERE ended_at IS NULL;
  ALTER TABLE enrollments ADD COLUMN replaced_at INTEGER;
  `,
  // 4: the vault (issue 7): secret versions sealed by envelope encryption (no value in clear),
  // who may receive each secret, and what each edge holds (acknowledged deliveries)
  `
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    current_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE secret_versions (
    name TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    size INTEGER NOT NULL,
    kek_id TEXT,
    wrapped_key BLOB,
    ciphertext BLOB,
    deleted_at INTEGER,
    destroyed_at INTEGER,
    PRIMARY KEY (name, version)
  ) STRICT;
  CREATE INDEX secret_versions_kek ON secret_versions(kek_id) WHERE kek_id IS NOT NULL;
  CREATE TABLE secret_access (
    name TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('edge','device','tag')),
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (name, kind, subject)
  ) STRICT;
  CREATE TABLE secret_deliveries (
    edge_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL,
    last_read_at INTEGER,
    reads INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (edge_id, name)
  ) STRICT;
  CREATE INDEX secret_deliveries_name ON secret_deliveries(name);
  `,
  // 5: edge security monitoring (src/store/sqlite/monitor-repository.ts). Inventories and raw
  // events go with their edge; alerts and findings outlive it (they name the edge).
  `
  CREATE TABLE monitor_edges (
    edge_id TEXT PRIMARY KEY REFERENCES edges(id) ON DELETE CASCADE,
    last_telemetry_at INTEGER,
    queue_id TEXT,
    last_batch INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL DEFAULT 0,
    bytes_received INTEGER NOT NULL DEFAULT 0,
    events_stored INTEGER NOT NULL DEFAULT 0,
    checkpoint_interval_ms INTEGER
  ) STRICT;
  CREATE TABLE monitor_inventories (
    edge_id TEXT NOT NULL REFERENCES edges(id) ON DELETE CASCADE,
    inventory TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (edge_id, inventory)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE monitor_rows (
    edge_id TEXT NOT NULL REFERENCES edges(id) ON DELETE CASCADE,
    inventory TEXT NOT NULL,
    k TEXT NOT NULL,
    row TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (edge_id, inventory, k)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE monitor_events (
    id INTEGER PRIMARY KEY,
    edge_id TEXT NOT NULL REFERENCES edges(id) ON DELETE CASCADE,
    ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user TEXT,
    source TEXT,
    method TEXT,
    count INTEGER NOT NULL,
    line TEXT
  ) STRICT;
  CREATE INDEX monitor_events_edge ON monitor_events(edge_id, id);
  CREATE INDEX monitor_events_ts ON monitor_events(ts);
  CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    edge_id TEXT NOT NULL,
    edge_name TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('low','medium','high','critical')),
    status TEXT NOT NULL CHECK (status IN ('open','acked','resolved')),
    facts TEXT NOT NULL,
    evidence TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    acked_by TEXT,
    acked_at INTEGER,
    resolved_by TEXT,
    resolved_at INTEGER,
    note TEXT
  ) STRICT;
  CREATE UNIQUE INDEX alerts_unresolved_key ON alerts(edge_id, rule, key) WHERE status != 'resolved';
  CREATE INDEX alerts_status ON alerts(status, last_seen);
  CREATE INDEX alerts_edge ON alerts(edge_id, last_seen);
  CREATE INDEX alerts_last_seen ON alerts(last_seen);
  CREATE TABLE findings (
    id TEXT PRIMARY KEY,
    edge_id TEXT NOT NULL,
    edge_name TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('low','medium','high','critical')),
    status TEXT NOT NULL CHECK (status IN ('open','resolved')),
    facts TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    resolved_at INTEGER,
    muted_by TEXT,
    muted_at INTEGER,
    mute_reason TEXT,
    UNIQUE (edge_id, rule, key)
  ) STRICT;
  CREATE INDEX findings_status ON findings(status, edge_id);
  -- failed logins per edge and hour, for "most attacked first" without scanning raw events
  CREATE TABLE monitor_failures (
    edge_id TEXT NOT NULL REFERENCES edges(id) ON DELETE CASCADE,
    hour INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (edge_id, hour)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX monitor_failures_hour ON monitor_failures(hour);
  `,
  // 6: open alerts and findings counted as they change (by triggers), so the metrics read a few
  // rows instead of counting 40,000 alerts on the hub's event loop (a 110-140 ms stall).
  `
  CREATE TABLE monitor_open_counts (
    kind TEXT NOT NULL CHECK (kind IN ('alert','finding')),
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (kind, severity, status)
  ) STRICT, WITHOUT ROWID;
  INSERT INTO monitor_open_counts (kind, severity, status, count)
    SELECT 'alert', severity, status, COUNT(*) FROM alerts WHERE status IN ('open','acked') GROUP BY severity, status;
  INSERT INTO monitor_open_counts (kind, severity, status, count)
    SELECT 'finding', severity, 'open', COUNT(*) FROM findings WHERE status = 'open' AND muted_at IS NULL GROUP BY severity;

  CREATE TRIGGER alerts_count_insert AFTER INSERT ON alerts WHEN NEW.status IN ('open','acked') BEGIN
    INSERT INTO monitor_open_counts (kind, severity, status, count) VALUES ('alert', NEW.severity, NEW.status, 1)
      ON CONFLICT (kind, severity, status) DO UPDATE SET count = count + 1;
  END;
  CREATE TRIGGER alerts_count_update AFTER UPDATE OF status, severity ON alerts
    WHEN OLD.status IS NOT NEW.status OR OLD.severity IS NOT NEW.severity BEGIN
    UPDATE monitor_open_counts SET count = count - 1
      WHERE OLD.status IN ('open','acked') AND kind = 'alert' AND severity = OLD.severity AND status = OLD.status;
    INSERT INTO monitor_open_counts (kind, severity, status, count) SELECT 'alert', NEW.severity, NEW.status, 1
      WHERE NEW.status IN ('open','acked')
      ON CONFLICT (kind, severity, status) DO UPDATE SET count = count + 1;
  END;
  CREATE TRIGGER alerts_count_delete AFTER DELETE ON alerts WHEN OLD.status IN ('open','acked') BEGIN
    UPDATE monitor_open_counts SET count = count - 1 WHERE kind = 'alert' AND severity = OLD.severity AND status = OLD.status;
  END;

  CREATE TRIGGER findings_count_insert AFTER INSERT ON findings WHEN NEW.status = 'open' AND NEW.muted_at IS NULL BEGIN
    INSERT INTO monitor_open_counts (kind, severity, status, count) VALUES ('finding', NEW.severity, 'open', 1)
      ON CONFLICT (kind, severity, status) DO UPDATE SET count = count + 1;
  END;
  CREATE TRIGGER findings_count_update AFTER UPDATE OF status, severity, muted_at ON findings
    WHEN (OLD.status = 'open' AND OLD.muted_at IS NULL) IS NOT (NEW.status = 'open' AND NEW.muted_at IS NULL) OR OLD.severity IS NOT NEW.severity BEGIN
    UPDATE monitor_open_counts SET count = count - 1
      WHERE OLD.status = 'open' AND OLD.muted_at IS NULL AND kind = 'finding' AND severity = OLD.severity AND status = 'open';
    INSERT INTO monitor_open_counts (kind, severity, status, count) SELECT 'finding', NEW.severity, 'open', 1
      WHERE NEW.status = 'open' AND NEW.muted_at IS NULL
      ON CONFLICT (kind, severity, status) DO UPDATE SET count = count + 1;
  END;
  CREATE TRIGGER findings_count_delete AFTER DELETE ON findings WHEN OLD.status = 'open' AND OLD.muted_at IS NULL BEGIN
    UPDATE monitor_open_counts SET count = count - 1 WHERE kind = 'finding' AND severity = OLD.severity AND status = 'open';
  END;
  `,
];
