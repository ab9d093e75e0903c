package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/runtime"
)

// projectionStore is the runtime.ProjectionStore of a Store.
type projectionStore struct {
	s *Store
	q projectionQueries
	// mu guards ready: the tables are created on first use, once per
	// projection store, and again after a failure.
	mu    sync.Mutex
	ready bool
}

var _ runtime.ProjectionStore[pgx.Tx] = (*projectionStore)(nil)

// Projections returns the store's projection store: checkpoints,
// generations and partition leases in tables next to the events (in
// Config.Schema, named with Config.TablePrefix, created on first use), and
// every batch in a transaction of the store's pool that handlers write the
// read model through, in the same database.
//
// A batch takes pg_try_advisory_xact_lock on its (projection, generation,
// partition): an instance finding it taken skips the partition for now, so
// two batches of one partition never run at once, and the batch checks the
// partition's checkpoint under that lock. Batches hold a share lock on the
// projection's row, which generation changes update: a switch waits for the
// batches of the generation it retires, and those that come after it see
// that the generation is retired. Leases use the database's clock.
//
// Each call returns a new projection store, which creates the tables on its
// first use: keep one per Store.
func (s *Store) Projections() runtime.ProjectionStore[pgx.Tx] {
	return &projectionStore{s: s, q: newProjectionQueries(s.cfg, s.n.events)}
}

// ReplaceView makes view select every row of table, in tx: it drops view
// if it exists and creates it again, which is how a projection's Activate
// switches readers to a new generation. Readers blocked on the view
// meanwhile read the new one once tx commits. Names may be qualified with a
// schema ("shop.orders"); each part is quoted.
func ReplaceView(ctx context.Context, tx pgx.Tx, view, table string) error {
	v, t := quoteName(view), quoteName(table)
	if _, err := tx.Exec(ctx, `DROP VIEW IF EXISTS `+v); err != nil {
		return fmt.Errorf("postgres: replace view %s: %w", view, err)
	}
	if _, err := tx.Exec(ctx, `CREATE VIEW `+v+` AS SELECT * FROM `+t); err != nil {
		return fmt.Errorf("postgres: replace view %s: %w", view, err)
	}
	return nil
}

// quoteName quotes each dot-separated part of name as an identifier.
func quoteName(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}

// projectionQueries holds the projection store's statements, built once.
type projectionQueries struct {
	// tables are the qualified names, for to_regclass.
	tables []string
	create []string
	// createLock serializes the creation of the tables.
	createLock int64
	// lockSeed starts the advisory lock keys of batches and leases.
	lockSeed string

	generations, insertProjection, lockProjection, updateProjection string
	checkpoint, batchState, saveCheckpoint                          string
	head, caughtUp, dropCheckpoints                                 string
	expireMembers, expireLeases, leave, dropLeases, join            string
	members, leases, takeLease, dropLease                           string
}

func newProjectionQueries(c Config, events string) projectionQueries {
	qualify := func(table string) string { return pgx.Identifier{c.Schema, c.TablePrefix + table}.Sanitize() }
	proj, cps := qualify("projections"), qualify("projection_checkpoints")
	leases, members := qualify("projection_leases"), qualify("projection_members")
	return projectionQueries{
		tables: []string{proj, cps, leases, members},
		create: []string{
			// One row per projection: the generation readers see and the
			// newest one (above it while a rebuild runs), each with its
			// partition count.
			`CREATE TABLE IF NOT EXISTS ` + proj + ` (
	name              text PRIMARY KEY,
	active_generation integer NOT NULL,
	active_partitions integer NOT NULL,
	latest_generation integer NOT NULL,
	latest_partitions integer NOT NULL
)`,
			`CREATE TABLE IF NOT EXISTS ` + cps + ` (
	name       text    NOT NULL,
	generation integer NOT NULL,
	part       integer NOT NULL,
	position   bigint  NOT NULL,
	PRIMARY KEY (name, generation, part)
)`,
			// Which instance of a projection holds which partition, until
			// when.
			`CREATE TABLE IF NOT EXISTS ` + leases + ` (
	name       text        NOT NULL,
	part       integer     NOT NULL,
	owner      text        NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (name, part)
)`,
			// The live instances of a projection, whose number splits the
			// partitions.
			`CREATE TABLE IF NOT EXISTS ` + members + ` (
	name       text        NOT NULL,
	owner      text        NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (name, owner)
)`,
		},
		createLock: lockKey("projections", c),
		lockSeed:   "protoc-gen-eda\x00projection\x00" + c.Schema + "\x00" + c.TablePrefix + "\x00",

		generations:      `SELECT active_generation, active_partitions, latest_generation, latest_partitions FROM ` + proj + ` WHERE name = $1`,
		insertProjection: `INSERT INTO ` + proj + ` (name, active_generation, active_partitions, latest_generation, latest_partitions) VALUES ($1, 0, 0, 0, 0) ON CONFLICT (name) DO NOTHING`,
		lockProjection:   `SELECT active_generation, active_partitions, latest_generation, latest_partitions FROM ` + proj + ` WHERE name = $1 FOR UPDATE`,
		updateProjection: `UPDATE ` + proj + ` SET active_generation = $2, active_partitions = $3, latest_generation = $4, latest_partitions = $5 WHERE name = $1`,

		checkpoint: `SELECT position FROM ` + cps + ` WHERE name = $1 AND generation = $2 AND part = $3`,
		// batchState takes the partition's lock, a share lock on the
		// projection's row and reads the checkpoint, in one round trip.
		batchState: `SELECT pg_try_advisory_xact_lock($4), p.active_generation, p.latest_generation,
	coalesce((SELECT c.position FROM ` + cps + ` AS c WHERE c.name = p.name AND c.generation = $2 AND c.part = $3), 0)
FROM ` + proj + ` AS p WHERE p.name = $1 FOR SHARE OF p`,
		saveCheckpoint: `INSERT INTO ` + cps + ` (name, generation, part, position) VALUES ($1, $2, $3, $4)
ON CONFLICT (name, generation, part) DO UPDATE SET position = excluded.position`,

		head:            `SELECT coalesce(max(position), 0) FROM ` + events,
		caughtUp:        `SELECT count(*) FROM ` + cps + ` WHERE name = $1 AND generation = $2 AND part < $3 AND position >= $4`,
		dropCheckpoints: `DELETE FROM ` + cps + ` WHERE name = $1 AND generation < $2`,

		expireMembers: `DELETE FROM ` + members + ` WHERE name = $1 AND expires_at <= now()`,
		expireLeases:  `DELETE FROM ` + leases + ` WHERE name = $1 AND expires_at <= now()`,
		leave:         `DELETE FROM ` + members + ` WHERE name = $1 AND owner = $2`,
		dropLeases:    `DELETE FROM ` + leases + ` WHERE name = $1 AND owner = $2`,
		join: `INSERT INTO ` + members + ` (name, owner, expires_at) VALUES ($1, $2, now() + $3 * interval '1 microsecond')
ON CONFLICT (name, owner) DO UPDATE SET expires_at = excluded.expires_at`,
		members: `SELECT owner FROM ` + members + ` WHERE name = $1 ORDER BY owner COLLATE "C"`,
		leases:  `SELECT part, owner FROM ` + leases + ` WHERE name = $1`,
		takeLease: `INSERT INTO ` + leases + ` AS l (name, part, owner, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
ON CONFLICT (name, part) DO UPDATE SET expires_at = excluded.expires_at WHERE l.owner = excluded.owner`,
		dropLease: `DELETE FROM ` + leases + ` WHERE name = $1 AND part = $2 AND owner = $3`,
	}
}

// lockKey returns the advisory lock key of what parts name, within this
// store's tables.
func (q *projectionQueries) lockKey(parts ...string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(q.lockSeed))
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// begin checks that the store is open and creates the tables on first use:
// when they exist it only reads the catalog, so a role without CREATE
// rights can use tables an administrator created; otherwise it creates them
// under an advisory lock, since concurrent CREATE TABLE IF NOT EXISTS can
// fail with a unique violation in pg_type.
func (ps *projectionStore) begin(ctx context.Context, op string) error {
	if ps.s.closed.Load() {
		return errClosed(op)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ready {
		return nil
	}
	var present bool
	err := ps.s.pool.QueryRow(ctx, `SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest($1::text[]) AS t`, ps.q.tables).Scan(&present)
	if err == nil && !present {
		err = ps.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, ps.q.createLock); err != nil {
				return err
			}
			for _, stmt := range ps.q.create {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("%w; the role needs CREATE on the schema, or an administrator creates the tables", err)
				}
			}
			return nil
		})
	}
	if err != nil {
		return ps.s.wrap(op+": create the projection tables", err)
	}
	ps.ready = true
	return nil
}

// inTx runs fn in a transaction of the pool, committed if fn returns nil.
// Unlike pgx.BeginFunc it returns fn's error as it is. With Config.Schema
// set, the transaction's search_path starts with that schema, so a read
// model's unqualified tables and views land beside the store's tables
// instead of in public.
func (ps *projectionStore) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := ps.s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if schema := ps.s.cfg.Schema; schema != "" {
		err = func() error {
			_, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()+", public")
			return err
		}()
	}
	if err == nil {
		err = fn(tx)
	}
	if err != nil {
		// Ends the transaction, or the connection if the context is done;
		// err says why.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

// Generations implements runtime.ProjectionStore.
func (ps *projectionStore) Generations(ctx context.Context, name string) (runtime.ProjectionGenerations, error) {
	op := "projection generations of " + name
	if err := ps.begin(ctx, op); err != nil {
		return runtime.ProjectionGenerations{}, err
	}
	g, err := scanGenerations(ps.s.pool.QueryRow(ctx, ps.q.generations, name))
	if err != nil {
		return g, ps.s.wrap(op, err)
	}
	return g, nil
}

// scanGenerations reads a projections row; none is the zero value.
func scanGenerations(row pgx.Row) (runtime.ProjectionGenerations, error) {
	var g runtime.ProjectionGenerations
	err := row.Scan(&g.Active, &g.ActivePartitions, &g.Latest, &g.LatestPartitions)
	if errors.Is(err, pgx.ErrNoRows) {
		return runtime.ProjectionGenerations{}, nil
	}
	return g, err
}

// StartGeneration implements runtime.ProjectionStore, in one transaction
// holding the projection's row lock.
func (ps *projectionStore) StartGeneration(ctx context.Context, name string, gen, partitions int, setup func(context.Context, pgx.Tx) error, activate func(context.Context, pgx.Tx, int) error) (bool, error) {
	op := fmt.Sprintf("start generation %d of projection %s", gen, name)
	if err := ps.begin(ctx, op); err != nil {
		return false, err
	}
	started := false
	err := ps.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ps.q.insertProjection, name); err != nil {
			return err
		}
		g, err := scanGenerations(tx.QueryRow(ctx, ps.q.lockProjection, name))
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
		if _, err := tx.Exec(ctx, ps.q.updateProjection, name, g.Active, g.ActivePartitions, g.Latest, g.LatestPartitions); err != nil {
			return err
		}
		started = true
		return nil
	})
	if err != nil {
		return false, ps.s.wrap(op, err)
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
	err := ps.s.pool.QueryRow(ctx, ps.q.checkpoint, name, gen, partition).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, ps.s.wrap(op, err)
	}
	return uint64(pos), nil
}

// RunBatch implements runtime.ProjectionStore. Its checks cost one round
// trip (batchState) before fn, and the checkpoint one after.
func (ps *projectionStore) RunBatch(ctx context.Context, b runtime.ProjectionBatch, fn func(context.Context, pgx.Tx) (uint64, error)) (uint64, error) {
	op := fmt.Sprintf("projection %s generation %d partition %d", b.Name, b.Generation, b.Partition)
	if err := ps.begin(ctx, op); err != nil {
		return b.From, err
	}
	key := ps.q.lockKey("batch", b.Name, strconv.Itoa(b.Generation), strconv.Itoa(b.Partition))
	committed := b.From
	var state error // a check that failed: not a database error
	ran := false
	err := ps.inTx(ctx, func(tx pgx.Tx) error {
		var locked bool
		var active, latest int
		var cp int64
		err := tx.QueryRow(ctx, ps.q.batchState, b.Name, b.Generation, b.Partition, key).Scan(&locked, &active, &latest, &cp)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			state = runtime.ErrGenerationRetired
		case err != nil:
			return err
		case !locked:
			state = runtime.ErrPartitionBusy
		case b.Generation != active && b.Generation != latest:
			state = runtime.ErrGenerationRetired
		case uint64(cp) != b.From:
			committed, state = uint64(cp), runtime.ErrCheckpointMoved
		}
		if state != nil {
			return state
		}
		ran = true
		to, err := fn(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, ps.q.saveCheckpoint, b.Name, b.Generation, b.Partition, int64(to)); err != nil {
			return fmt.Errorf("save the checkpoint: %w", err)
		}
		committed = to
		return nil
	})
	switch {
	case err == nil:
		return committed, nil
	case state != nil:
		return committed, fmt.Errorf("postgres: %s: %w", op, state)
	case ran && !ps.s.closed.Load():
		return b.From, err // the handler's error, or the commit's, as it is
	}
	return b.From, ps.s.wrap(op, err)
}

// SwitchGeneration implements runtime.ProjectionStore. The transaction
// locks the projection's row, so it waits for running batches; it compares
// the checkpoints with the log's head as its snapshot sees it. Appends do
// not wait for it: an event committed after that snapshot is applied to the
// new generation by Run after the switch.
func (ps *projectionStore) SwitchGeneration(ctx context.Context, name string, gen int, head uint64, activate func(context.Context, pgx.Tx, int) error) error {
	op := fmt.Sprintf("switch projection %s to generation %d", name, gen)
	if err := ps.begin(ctx, op); err != nil {
		return err
	}
	var state error
	err := ps.inTx(ctx, func(tx pgx.Tx) error {
		g, err := scanGenerations(tx.QueryRow(ctx, ps.q.lockProjection, name))
		if err != nil {
			return err
		}
		if gen != g.Latest || gen <= g.Active {
			state = runtime.ErrGenerationRetired
			return state
		}
		var logHead int64
		if err := tx.QueryRow(ctx, ps.q.head).Scan(&logHead); err != nil {
			return fmt.Errorf("read the log's head: %w", err)
		}
		head = max(head, uint64(logHead))
		if head > 0 {
			var caughtUp int
			if err := tx.QueryRow(ctx, ps.q.caughtUp, name, gen, g.LatestPartitions, int64(head)).Scan(&caughtUp); err != nil {
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
		if _, err := tx.Exec(ctx, ps.q.updateProjection, name, gen, g.LatestPartitions, g.Latest, g.LatestPartitions); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, ps.q.dropCheckpoints, name, gen)
		return err
	})
	if err != nil {
		return ps.s.wrap(op, err)
	}
	return nil
}

// Lease implements runtime.ProjectionStore, in one transaction under an
// advisory lock per projection, with the database's clock.
func (ps *projectionStore) Lease(ctx context.Context, req runtime.ProjectionLeaseRequest) ([]int, error) {
	op := "lease partitions of projection " + req.Name
	if err := ps.begin(ctx, op); err != nil {
		return nil, err
	}
	var held []int
	err := ps.inTx(ctx, func(tx pgx.Tx) error {
		held = nil
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, ps.q.lockKey("lease", req.Name)); err != nil {
			return err
		}
		for _, stmt := range []string{ps.q.expireMembers, ps.q.expireLeases} {
			if _, err := tx.Exec(ctx, stmt, req.Name); err != nil {
				return err
			}
		}
		if req.TTL == 0 {
			for _, stmt := range []string{ps.q.leave, ps.q.dropLeases} {
				if _, err := tx.Exec(ctx, stmt, req.Name, req.Owner); err != nil {
					return err
				}
			}
			return nil
		}
		ttl := req.TTL.Microseconds()
		if _, err := tx.Exec(ctx, ps.q.join, req.Name, req.Owner, ttl); err != nil {
			return err
		}
		members, err := pgx.CollectRows(mustQuery(ctx, tx, ps.q.members, req.Name), pgx.RowTo[string])
		if err != nil {
			return err
		}
		leases := make(map[int]string)
		rows, err := tx.Query(ctx, ps.q.leases, req.Name)
		if err != nil {
			return err
		}
		var part int
		var owner string
		if _, err := pgx.ForEachRow(rows, []any{&part, &owner}, func() error {
			leases[part] = owner
			return nil
		}); err != nil {
			return err
		}
		held, err = req.Apply(members, leases, func(part int, take bool) error {
			var err error
			if take {
				_, err = tx.Exec(ctx, ps.q.takeLease, req.Name, part, req.Owner, ttl)
			} else {
				_, err = tx.Exec(ctx, ps.q.dropLease, req.Name, part, req.Owner)
			}
			return err
		})
		return err
	})
	if err != nil {
		return nil, ps.s.wrap(op, err)
	}
	return held, nil
}

// mustQuery runs query; an error comes back from the rows, which is how
// pgx.CollectRows reports it.
func mustQuery(ctx context.Context, tx pgx.Tx, query string, args ...any) pgx.Rows {
	rows, _ := tx.Query(ctx, query, args...)
	return rows
}
