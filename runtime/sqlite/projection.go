package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// projectionTables creates the projection store's tables; {p} is the
// store's table prefix. Every statement is idempotent, and they run in one
// write transaction (BEGIN IMMEDIATE), so processes opening one database at
// once create them once. They are not in the store's migrations because a
// store that runs no projection has no use for them.
var projectionTables = []string{
	// One row per projection: the generation readers see and the newest
	// one (above it while a rebuild runs), each with its partition count.
	`CREATE TABLE IF NOT EXISTS {p}projections (
		name              TEXT    NOT NULL PRIMARY KEY,
		active_generation INTEGER NOT NULL,
		active_partitions INTEGER NOT NULL,
		latest_generation INTEGER NOT NULL,
		latest_partitions INTEGER NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS {p}projection_checkpoints (
		name       TEXT    NOT NULL,
		generation INTEGER NOT NULL,
		part       INTEGER NOT NULL,
		position   INTEGER NOT NULL,
		PRIMARY KEY (name, generation, part)
	) WITHOUT ROWID`,
	// Which instance of a projection holds which partition, until when
	// (Unix nanoseconds).
	`CREATE TABLE IF NOT EXISTS {p}projection_leases (
		name       TEXT    NOT NULL,
		part       INTEGER NOT NULL,
		owner      TEXT    NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (name, part)
	) WITHOUT ROWID`,
	// The live instances of a projection, whose number splits the
	// partitions.
	`CREATE TABLE IF NOT EXISTS {p}projection_members (
		name       TEXT    NOT NULL,
		owner      TEXT    NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (name, owner)
	) WITHOUT ROWID`,
}

// Statements of the projection store; {p} is the table prefix.
const (
	projGenerationsSQL = `SELECT active_generation, active_partitions, latest_generation, latest_partitions
		FROM {p}projections WHERE name = ?`
	projStartSQL = `INSERT INTO {p}projections (name, active_generation, active_partitions, latest_generation, latest_partitions)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			active_generation = excluded.active_generation, active_partitions = excluded.active_partitions,
			latest_generation = excluded.latest_generation, latest_partitions = excluded.latest_partitions`
	projCheckpointSQL = `SELECT position FROM {p}projection_checkpoints WHERE name = ? AND generation = ? AND part = ?`
	// projBatchStateSQL reads, in a batch's transaction, the generations
	// and the partition's checkpoint at once.
	projBatchStateSQL = `SELECT active_generation, latest_generation,
			coalesce((SELECT position FROM {p}projection_checkpoints WHERE name = p.name AND generation = ? AND part = ?), 0)
		FROM {p}projections AS p WHERE name = ?`
	projSaveCheckpointSQL = `INSERT INTO {p}projection_checkpoints (name, generation, part, position) VALUES (?, ?, ?, ?)
		ON CONFLICT (name, generation, part) DO UPDATE SET position = excluded.position`
	projHeadSQL = `SELECT coalesce(max(position), 0) FROM {p}events`
	// projLaggingSQL counts the partitions of a generation with a
	// checkpoint at or past the head.
	projCaughtUpSQL = `SELECT count(*) FROM {p}projection_checkpoints
		WHERE name = ? AND generation = ? AND part < ? AND position >= ?`
	projActivateSQL        = `UPDATE {p}projections SET active_generation = ?, active_partitions = ? WHERE name = ?`
	projDropCheckpointsSQL = `DELETE FROM {p}projection_checkpoints WHERE name = ? AND generation < ?`

	projExpireMembersSQL = `DELETE FROM {p}projection_members WHERE name = ? AND expires_at <= ?`
	projExpireLeasesSQL  = `DELETE FROM {p}projection_leases WHERE name = ? AND expires_at <= ?`
	projLeaveSQL         = `DELETE FROM {p}projection_members WHERE name = ? AND owner = ?`
	projDropLeasesSQL    = `DELETE FROM {p}projection_leases WHERE name = ? AND owner = ?`
	projJoinSQL          = `INSERT INTO {p}projection_members (name, owner, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name, owner) DO UPDATE SET expires_at = excluded.expires_at`
	projMembersSQL   = `SELECT owner FROM {p}projection_members WHERE name = ? ORDER BY owner`
	projLeasesSQL    = `SELECT part, owner FROM {p}projection_leases WHERE name = ?`
	projTakeLeaseSQL = `INSERT INTO {p}projection_leases (name, part, owner, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name, part) DO UPDATE SET expires_at = excluded.expires_at WHERE owner = excluded.owner`
	projDropLeaseSQL = `DELETE FROM {p}projection_leases WHERE name = ? AND part = ? AND owner = ?`
)

// projectionStore is the runtime.ProjectionStore of a Store.
type projectionStore struct {
	s *Store
	// mu guards ready and the statements: the tables are created and the
	// statements prepared on first use, once per projection store, and
	// again after a failure.
	mu    sync.Mutex
	ready bool
	// batchState and saveCheckpoint run in every batch: prepared once,
	// they skip SQLite's parser, which is most of the cost of a one-row
	// statement (BenchmarkProjectionSQLite, CPU profile).
	batchState, saveCheckpoint *sql.Stmt
}

var _ runtime.ProjectionStore[*sql.Tx] = (*projectionStore)(nil)

// Projections returns the store's projection store: checkpoints,
// generations and partition leases in tables next to the events (named
// with Config.TablePrefix, created on first use), and every batch in a
// write transaction (BEGIN IMMEDIATE) that handlers write the read model
// through. Read-model tables therefore live in the same database file as
// the events; query them through DB.
//
// SQLite has one writer at a time, so batches, appends and every other
// write of the database queue for the write lock: two batches of one
// partition never run at once, and a batch checks the partition's
// checkpoint under the lock. Handlers must write through the transaction
// they are given, not through the Store (an Append from a handler waits
// for the batch's own write lock forever).
//
// Each call returns a new projection store, which creates the tables on
// its first use: keep one per Store.
func (s *Store) Projections() runtime.ProjectionStore[*sql.Tx] {
	return &projectionStore{s: s}
}

// ReplaceView makes view select every row of table, in tx: it drops view
// if it exists and creates it again, which is how a projection's Activate
// switches readers to a new generation. Names may be qualified with a
// schema ("main.orders"); each part is quoted.
func ReplaceView(ctx context.Context, tx *sql.Tx, view, table string) error {
	v, t := quoteName(view), quoteName(table)
	if _, err := tx.ExecContext(ctx, `DROP VIEW IF EXISTS `+v); err != nil {
		return fmt.Errorf("sqlite: replace view %s: %w", view, err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE VIEW `+v+` AS SELECT * FROM `+t); err != nil {
		return fmt.Errorf("sqlite: replace view %s: %w", view, err)
	}
	return nil
}

// quoteName quotes each dot-separated part of name as an SQL identifier.
func quoteName(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// q returns query with the store's table prefix.
func (ps *projectionStore) q(query string) string { return withPrefix(query, ps.s.cfg.TablePrefix) }

// begin checks that the store is open and creates the tables on first use.
func (ps *projectionStore) begin(ctx context.Context, op string) error {
	if err := ps.s.check(ctx, op); err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ready {
		return nil
	}
	err := ps.s.write(ctx, func(tx *sql.Tx) error {
		for _, stmt := range projectionTables {
			if _, err := tx.ExecContext(ctx, ps.q(stmt)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ps.s.fail(op+": create the projection tables", err)
	}
	// The statements stay prepared until the store's database closes.
	if ps.batchState, err = ps.s.wdb.PrepareContext(ctx, ps.q(projBatchStateSQL)); err == nil {
		ps.saveCheckpoint, err = ps.s.wdb.PrepareContext(ctx, ps.q(projSaveCheckpointSQL))
	}
	if err != nil {
		if ps.batchState != nil {
			ps.batchState.Close()
		}
		return ps.s.fail(op+": prepare the projection statements", err)
	}
	ps.ready = true
	return nil
}

// Generations implements runtime.ProjectionStore.
func (ps *projectionStore) Generations(ctx context.Context, name string) (runtime.ProjectionGenerations, error) {
	const op = "projection generations"
	if err := ps.begin(ctx, op); err != nil {
		return runtime.ProjectionGenerations{}, err
	}
	g, err := scanGenerations(ps.s.rdb.QueryRowContext(ctx, ps.q(projGenerationsSQL), name))
	if err != nil {
		return g, ps.s.fail(op+" of "+name, err)
	}
	return g, nil
}

// scanGenerations reads a projections row; none is the zero value.
func scanGenerations(row *sql.Row) (runtime.ProjectionGenerations, error) {
	var g runtime.ProjectionGenerations
	err := row.Scan(&g.Active, &g.ActivePartitions, &g.Latest, &g.LatestPartitions)
	if errors.Is(err, sql.ErrNoRows) {
		return runtime.ProjectionGenerations{}, nil
	}
	return g, err
}

// StartGeneration implements runtime.ProjectionStore, in one write
// transaction.
func (ps *projectionStore) StartGeneration(ctx context.Context, name string, gen, partitions int, setup func(context.Context, *sql.Tx) error, activate func(context.Context, *sql.Tx, int) error) (bool, error) {
	op := fmt.Sprintf("start generation %d of projection %s", gen, name)
	if err := ps.begin(ctx, op); err != nil {
		return false, err
	}
	started := false
	err := ps.s.write(ctx, func(tx *sql.Tx) error {
		g, err := scanGenerations(tx.QueryRowContext(ctx, ps.q(projGenerationsSQL), name))
		if err != nil || g.Latest != gen-1 {
			return err
		}
		if err := setup(ctx, tx); err != nil {
			return err
		}
		g.Latest, g.LatestPartitions = gen, partitions
		if activate != nil {
			if err := activate(ctx, tx, g.Active); err != nil {
				return err
			}
			g.Active, g.ActivePartitions = gen, partitions
		}
		if _, err := tx.ExecContext(ctx, ps.q(projStartSQL), name, g.Active, g.ActivePartitions, g.Latest, g.LatestPartitions); err != nil {
			return err
		}
		started = true
		return nil
	})
	if err != nil {
		return false, ps.s.fail(op, err)
	}
	return started, nil
}

// Checkpoint implements runtime.ProjectionStore.
func (ps *projectionStore) Checkpoint(ctx context.Context, name string, gen, partition int) (uint64, error) {
	op := fmt.Sprintf("checkpoint of projection %s generation %d partition %d", name, gen, partition)
	if err := ps.begin(ctx, op); err != nil {
		return 0, err
	}
	var pos int64
	err := ps.s.rdb.QueryRowContext(ctx, ps.q(projCheckpointSQL), name, gen, partition).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, ps.s.fail(op, err)
	}
	return uint64(pos), nil
}

// RunBatch implements runtime.ProjectionStore in one write transaction,
// which holds SQLite's write lock from its start: the checks and fn see no
// other writer.
func (ps *projectionStore) RunBatch(ctx context.Context, b runtime.ProjectionBatch, fn func(context.Context, *sql.Tx) (uint64, error)) (uint64, error) {
	op := fmt.Sprintf("projection %s generation %d partition %d", b.Name, b.Generation, b.Partition)
	if err := ps.begin(ctx, op); err != nil {
		return b.From, err
	}
	committed := b.From
	var state error // a check that failed: not a database error
	err := ps.s.write(ctx, func(tx *sql.Tx) error {
		var active, latest int
		var cp int64
		err := tx.StmtContext(ctx, ps.batchState).QueryRowContext(ctx, b.Generation, b.Partition, b.Name).Scan(&active, &latest, &cp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			state = runtime.ErrGenerationRetired
		case err != nil:
			return err
		case b.Generation != active && b.Generation != latest:
			state = runtime.ErrGenerationRetired
		case uint64(cp) != b.From:
			committed, state = uint64(cp), runtime.ErrCheckpointMoved
		}
		if state != nil {
			return state
		}
		to, err := fn(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, ps.saveCheckpoint).ExecContext(ctx, b.Name, b.Generation, b.Partition, int64(to)); err != nil {
			return fmt.Errorf("save the checkpoint: %w", err)
		}
		committed = to
		return nil
	})
	switch {
	case err == nil:
		return committed, nil
	case state != nil:
		return committed, fmt.Errorf("sqlite: %s: %w", op, state)
	case errors.Is(err, runtime.ErrStoreClosed) || ps.s.closed.Load():
		return b.From, ps.s.fail(op, err)
	}
	return b.From, err // the handler's error, or the database's, as it is
}

// SwitchGeneration implements runtime.ProjectionStore. The log's head is
// read under the write lock, which appends need too: no event can arrive
// between the check and the switch.
func (ps *projectionStore) SwitchGeneration(ctx context.Context, name string, gen int, head uint64, activate func(context.Context, *sql.Tx, int) error) error {
	op := fmt.Sprintf("switch projection %s to generation %d", name, gen)
	if err := ps.begin(ctx, op); err != nil {
		return err
	}
	var state error
	err := ps.s.write(ctx, func(tx *sql.Tx) error {
		g, err := scanGenerations(tx.QueryRowContext(ctx, ps.q(projGenerationsSQL), name))
		if err != nil {
			return err
		}
		if gen != g.Latest || gen <= g.Active {
			state = runtime.ErrGenerationRetired
			return state
		}
		var logHead int64
		if err := tx.QueryRowContext(ctx, ps.q(projHeadSQL)).Scan(&logHead); err != nil {
			return fmt.Errorf("read the log's head: %w", err)
		}
		head = max(head, uint64(logHead))
		if head > 0 {
			var caughtUp int
			if err := tx.QueryRowContext(ctx, ps.q(projCaughtUpSQL), name, gen, g.LatestPartitions, int64(head)).Scan(&caughtUp); err != nil {
				return err
			}
			if caughtUp < g.LatestPartitions {
				state = runtime.ErrNotCaughtUp
				return state
			}
		}
		if err := activate(ctx, tx, g.Active); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, ps.q(projActivateSQL), gen, g.LatestPartitions, name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, ps.q(projDropCheckpointsSQL), name, gen)
		return err
	})
	if err != nil {
		return ps.s.fail(op, err)
	}
	return nil
}

// Lease implements runtime.ProjectionStore in one write transaction, with
// the process's clock (the processes sharing a file share a machine).
func (ps *projectionStore) Lease(ctx context.Context, req runtime.ProjectionLeaseRequest) ([]int, error) {
	op := "lease partitions of projection " + req.Name
	if err := ps.begin(ctx, op); err != nil {
		return nil, err
	}
	var held []int
	err := ps.s.write(ctx, func(tx *sql.Tx) error {
		held = nil
		now := time.Now()
		for _, stmt := range []string{projExpireMembersSQL, projExpireLeasesSQL} {
			if _, err := tx.ExecContext(ctx, ps.q(stmt), req.Name, now.UnixNano()); err != nil {
				return err
			}
		}
		if req.TTL == 0 {
			for _, stmt := range []string{projLeaveSQL, projDropLeasesSQL} {
				if _, err := tx.ExecContext(ctx, ps.q(stmt), req.Name, req.Owner); err != nil {
					return err
				}
			}
			return nil
		}
		expires := now.Add(req.TTL).UnixNano()
		if _, err := tx.ExecContext(ctx, ps.q(projJoinSQL), req.Name, req.Owner, expires); err != nil {
			return err
		}
		members, leases, err := ps.leaseState(ctx, tx, req.Name)
		if err != nil {
			return err
		}
		held, err = req.Apply(members, leases, func(part int, take bool) error {
			stmt, args := projDropLeaseSQL, []any{req.Name, part, req.Owner}
			if take {
				stmt, args = projTakeLeaseSQL, []any{req.Name, part, req.Owner, expires}
			}
			_, err := tx.ExecContext(ctx, ps.q(stmt), args...)
			return err
		})
		return err
	})
	if err != nil {
		return nil, ps.s.fail(op, err)
	}
	return held, nil
}

// leaseState reads the live members, sorted, and the live leases.
func (ps *projectionStore) leaseState(ctx context.Context, tx *sql.Tx, name string) ([]string, map[int]string, error) {
	rows, err := tx.QueryContext(ctx, ps.q(projMembersSQL), name)
	if err != nil {
		return nil, nil, err
	}
	var members []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return nil, nil, err
		}
		members = append(members, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = tx.QueryContext(ctx, ps.q(projLeasesSQL), name)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	leases := make(map[int]string)
	for rows.Next() {
		var part int
		var owner string
		if err := rows.Scan(&part, &owner); err != nil {
			return nil, nil, err
		}
		leases[part] = owner
	}
	return members, leases, rows.Err()
}
