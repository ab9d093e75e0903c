package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"google.golang.org/protobuf/proto"
)

// readAhead is the fewest records of the log a read asks for. With a
// query per batch of 100, reading took half as long again as the
// hand-written fold's pages of 1,000 records (BenchmarkProjectionSQLite,
// CPU profile); the records read ahead wait in memory, a few hundred
// kilobytes, for the next batches.
const readAhead = 1024

// window holds the records of one partition read from the log and not
// applied yet, and the partition's checkpoint. It is reused from read to
// read.
type window[Tx any] struct {
	// known is false until the checkpoint is read from the store, and
	// again after an error, when the window is emptied.
	known bool
	// cp is the partition's checkpoint: every record up to it is applied.
	cp uint64
	// items are the partition's records read after cp; next is the first
	// not applied.
	items []batchItem[Tx]
	next  int
	// arena holds copies of the kept records' Data and Metadata, which the
	// event store reuses once its callback returns.
	arena []byte
	// scanned is the position of the last record read, of any partition;
	// atHead is true when that read reached the end of the log.
	scanned uint64
	atHead  bool
}

// batchItem is one record of the window's partition.
type batchItem[Tx any] struct {
	rec EventRecord
	// route is nil for a record no route consumes (ignored).
	route *ProjectionRoute[Tx]
	msg   proto.Message
	// skip says why a routed record cannot be applied.
	skip error
}

// reset empties w, to read again after its checkpoint.
func (w *window[Tx]) reset() {
	clear(w.items) // drop the messages for the collector
	w.items, w.next = w.items[:0], 0
	w.arena = w.arena[:0]
	w.scanned, w.atHead = w.cp, false
}

// forget empties w and marks its checkpoint unknown: after an error, the
// store says where the partition is.
func (w *window[Tx]) forget() {
	w.known = false
	w.cp = 0
	w.reset()
}

// read fills w with the records of partition part (of parts) after its
// checkpoint: those of one page of the log.
func (p *Projection[Tx]) read(ctx context.Context, w *window[Tx], part, parts int) error {
	w.reset()
	limit := max(p.cfg.BatchSize*parts, readAhead)
	scanned := 0
	err := p.log.ReadAll(ctx, w.cp, limit, func(rec *EventRecord) error {
		scanned++
		w.scanned = rec.Position
		if parts > 1 && ProjectionPartition(rec.Stream, parts) != part {
			return nil
		}
		p.classify(ctx, w, rec)
		return nil
	})
	if err != nil {
		w.reset()
		return fmt.Errorf("projection %s: read the global log after position %d: %w", p.spec.Name, w.cp, err)
	}
	w.atHead = scanned < limit
	return nil
}

// classify adds rec to w: decoded for its route, ignored, or skipped.
func (p *Projection[Tx]) classify(ctx context.Context, w *window[Tx], rec *EventRecord) {
	w.items = append(w.items, batchItem[Tx]{rec: *rec})
	it := &w.items[len(w.items)-1]
	r := &it.rec // a copy: upcasters rewrite it, and the store's must not change
	if p.cfg.Upcasters != nil {
		if err := p.cfg.Upcasters.Upcast(ctx, r); err != nil {
			it.skip = err
			return
		}
	}
	route := p.routes[r.Type]
	if route == nil {
		return
	}
	it.route = route
	if want := max(route.Type.Version, 1); r.SchemaVersion != want {
		it.skip = fmt.Errorf("%s has schema version %d, the projection reads version %d and no upcaster maps it", r.Type, r.SchemaVersion, want)
		return
	}
	msg, err := route.decode(r)
	if err != nil {
		it.skip = err
		return
	}
	it.msg = msg
	// Growing the arena leaves earlier records pointing into the old
	// array, which stays alive and unchanged for them.
	r.Data, w.arena = keepBytes(w.arena, r.Data)
	r.Metadata, w.arena = keepBytes(w.arena, r.Metadata)
}

// keepBytes appends s to arena and returns the copy (nil for empty s).
func keepBytes(arena, s []byte) ([]byte, []byte) {
	if len(s) == 0 {
		return nil, arena
	}
	start := len(arena)
	arena = append(arena, s...)
	return arena[start:len(arena):len(arena)], arena
}

// commit applies items, the records after from up to to, in one
// transaction of the projection store that saves the checkpoint to, and
// counts what committed. It returns the partition's checkpoint after the
// call and the events applied.
func (p *Projection[Tx]) commit(ctx context.Context, items []batchItem[Tx], gen, part int, from, to uint64) (uint64, int, error) {
	ran, failed := false, false
	committed, err := p.store.RunBatch(ctx, ProjectionBatch{Name: p.spec.Name, Generation: gen, Partition: part, From: from},
		func(ctx context.Context, tx Tx) (uint64, error) {
			ran = true
			pt := ProjectionTx[Tx]{Tx: tx, Generation: gen}
			for i := range items {
				it := &items[i]
				if it.msg == nil {
					continue
				}
				if err := it.route.apply(ctx, pt, it.msg, &it.rec); err != nil {
					failed = true
					// What a store that cannot roll back keeps: everything
					// before this event.
					return it.rec.Position - 1, fmt.Errorf("projection %s: generation %d: apply %s %s (stream %s, position %d): %w",
						p.spec.Name, gen, it.rec.Type, it.rec.ID, it.rec.Stream, it.rec.Position, err)
				}
			}
			return to, nil
		})
	applied := 0
	if ran && (err == nil || failed) && committed > from {
		applied = p.count(items, gen, committed)
	}
	return committed, applied, err
}

// count adds items up to the committed checkpoint to the stats, logs the
// skipped ones, and returns the number applied.
func (p *Projection[Tx]) count(items []batchItem[Tx], gen int, committed uint64) int {
	var applied, ignored, skipped uint64
	for i := range items {
		it := &items[i]
		if it.rec.Position > committed {
			break
		}
		switch {
		case it.skip != nil:
			skipped++
			p.cfg.Logger.Error("Projection skips an event it cannot read", it.skip, watermill.LogFields{
				"projection": p.spec.Name, "generation": gen, "position": it.rec.Position,
				"event_id": it.rec.ID, "event_type": it.rec.Type, "stream": it.rec.Stream.String(),
			})
		case it.route == nil:
			ignored++
		default:
			applied++
		}
	}
	p.applied.Add(applied)
	p.ignored.Add(ignored)
	p.skipped.Add(skipped)
	p.mu.Lock()
	if gen == p.generation && committed > p.position {
		p.position = committed
	}
	p.mu.Unlock()
	return int(applied)
}

// partKey names a partition of a generation.
type partKey struct{ gen, part int }

// runner is one loop's state (Run's, CatchUp's, Rebuild's): a window per
// partition it applies.
type runner[Tx any] struct {
	p       *Projection[Tx]
	windows map[partKey]*window[Tx]
}

func (p *Projection[Tx]) newRunner() *runner[Tx] {
	return &runner[Tx]{p: p, windows: make(map[partKey]*window[Tx])}
}

// window returns the window of partition part of gen.
func (r *runner[Tx]) window(gen, part int) *window[Tx] {
	key := partKey{gen, part}
	w := r.windows[key]
	if w == nil {
		w = &window[Tx]{}
		r.windows[key] = w
	}
	return w
}

// drop forgets the checkpoint of partition part of gen, which another
// instance may have moved.
func (r *runner[Tx]) drop(gen, part int) {
	delete(r.windows, partKey{gen, part})
}

// step applies one batch of partition part of gen: at most BatchSize
// records, read ahead if needed. atHead reports that the batch reached
// the log's head: there is nothing more to apply for now.
func (r *runner[Tx]) step(ctx context.Context, gen, part, parts int) (applied int, atHead bool, err error) {
	p, w := r.p, r.window(gen, part)
	if !w.known {
		cp, err := p.store.Checkpoint(ctx, p.spec.Name, gen, part)
		if err != nil {
			return 0, false, fmt.Errorf("projection %s: read the checkpoint of generation %d partition %d: %w", p.spec.Name, gen, part, err)
		}
		w.cp, w.known = cp, true
		w.reset()
	}
	if w.next == len(w.items) && w.scanned == w.cp {
		if err := p.read(ctx, w, part, parts); err != nil {
			return 0, false, err
		}
		if w.scanned == w.cp {
			return 0, true, nil // nothing new
		}
	}
	end := min(w.next+p.cfg.BatchSize, len(w.items))
	to := w.scanned
	if end < len(w.items) {
		to = w.items[end-1].rec.Position
	}
	committed, applied, err := p.commit(ctx, w.items[w.next:end], gen, part, w.cp, to)
	switch {
	case err == nil:
		w.cp, w.next = committed, end
		return applied, w.next == len(w.items) && w.atHead, nil
	case errors.Is(err, ErrCheckpointMoved):
		// Another instance applied these events: read on from its
		// checkpoint.
		w.cp = committed
		w.reset()
		return 0, false, nil
	default:
		w.forget()
		return applied, false, err
	}
}

// catchUp runs batches of partition part of gen until one reaches the
// log's head, waiting PollInterval while another instance runs a batch of
// the partition. It returns the events applied and the checkpoint reached.
func (r *runner[Tx]) catchUp(ctx context.Context, gen, part, parts int) (int, uint64, error) {
	total := 0
	for {
		n, atHead, err := r.step(ctx, gen, part, parts)
		total += n
		switch {
		case errors.Is(err, ErrPartitionBusy):
			if !sleep(ctx, r.p.cfg.PollInterval) {
				return total, 0, ctx.Err()
			}
		case err != nil:
			return total, 0, err
		case atHead:
			return total, r.window(gen, part).cp, nil
		}
	}
}

// sleep waits for d or ctx, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
