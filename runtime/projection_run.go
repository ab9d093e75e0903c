package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// Run applies the active generation's events until ctx is done, then
// releases its partitions and returns nil: it catches up from the
// checkpoints, then polls every PollInterval for new events. If the
// projection has no generation yet, it starts the first.
//
// Run shares the partitions with the other instances running the same
// projection (by name, on the same stores): each live instance holds leases
// on its fair share of them, renewed every Lease/3, and applies only those;
// an instance that stops releases its leases, and the partitions of one
// that dies are taken over when its leases expire. A batch that fails (a
// handler error, a database error) is logged and tried again, the same
// batch, after PollInterval. When a rebuild switches generations, Run goes
// on with the new one. Run returns early only when the event store is
// closed.
func (p *Projection[Tx]) Run(ctx context.Context) error {
	r := p.newRunner()
	var l leases
	defer p.leave(ctx, &l)
	var g ProjectionGenerations
	stale := true
	for {
		if ctx.Err() != nil {
			return nil
		}
		if stale {
			active := g.Active
			var err error
			if g, err = p.generations(ctx); err != nil {
				if stop, err := p.retry(ctx, err); stop {
					return err
				}
				continue
			}
			stale = false
			if g.Active != active {
				clear(r.windows) // the retired generation's
			}
		}
		if l.due(g.ActivePartitions) {
			before := l.owned
			if err := p.renew(ctx, &l, g.ActivePartitions); err != nil {
				if stop, err := p.retry(ctx, err); stop {
					return err
				}
				continue
			}
			// Another instance may have moved the checkpoints of the
			// partitions taken over since this one last held them.
			for _, part := range l.owned {
				if !slices.Contains(before, part) {
					r.drop(g.Active, part)
				}
			}
		}
		more := false
		var err error
		for _, part := range l.owned {
			var atHead bool
			_, atHead, err = r.step(ctx, g.Active, part, g.ActivePartitions)
			if errors.Is(err, ErrPartitionBusy) {
				// A lease changing hands: the other instance's batch
				// ends soon.
				err = nil
				continue
			}
			if errors.Is(err, ErrGenerationRetired) {
				stale, more, err = true, true, nil
				break
			}
			if err != nil {
				break
			}
			more = more || !atHead
		}
		if err != nil {
			if stop, err := p.retry(ctx, err); stop {
				return err
			}
			continue
		}
		if !more {
			if !sleep(ctx, p.cfg.PollInterval) {
				return nil
			}
			// A rebuild may have switched generations meanwhile.
			stale = true
		}
	}
}

// retry handles an error of Run: it logs it and waits PollInterval. stop
// reports that Run must return, with err: ctx is done (nil) or the event
// store is closed.
func (p *Projection[Tx]) retry(ctx context.Context, err error) (stop bool, _ error) {
	switch {
	case ctx.Err() != nil:
		return true, nil
	case errors.Is(err, ErrStoreClosed):
		return true, err
	}
	p.cfg.Logger.Error("Projection failed; retrying", err, watermill.LogFields{"projection": p.spec.Name, "retry_in": p.cfg.PollInterval.String()})
	if !sleep(ctx, p.cfg.PollInterval) {
		return true, nil
	}
	return false, nil
}

// CatchUp applies the active generation's events, every partition, until
// the log's head, and returns the number applied. If the projection has no
// generation yet, it starts the first. It ignores Run's leases: a batch of a
// partition that another instance is running at that moment is waited for
// (PollInterval at a time), and events another instance applied are not
// applied again. A handler error ends CatchUp with that error; the batch it
// was in is rolled back.
func (p *Projection[Tx]) CatchUp(ctx context.Context) (int, error) {
	r := p.newRunner()
	total := 0
	for {
		g, err := p.generations(ctx)
		if err != nil {
			return total, err
		}
		retired := false
		for part := range g.ActivePartitions {
			n, _, err := r.catchUp(ctx, g.Active, part, g.ActivePartitions)
			total += n
			if errors.Is(err, ErrGenerationRetired) {
				// A rebuild switched generations: catch the new one up.
				retired = true
				break
			}
			if err != nil {
				return total, err
			}
		}
		if !retired {
			return total, nil
		}
	}
}

// Rebuild builds the read model again from the start of the log, into a
// new generation, without stopping readers or Run: it starts generation
// latest+1 (Setup) with the configured partition count, catches it up while
// the active generation keeps following new events, and when every
// partition is at the log's head (checked in the transaction that
// switches) makes it the active generation and calls Activate with the
// previous one. Run, here or in other instances, then goes on with the new
// generation.
//
// A rebuild that was interrupted (a crash, a cancelled ctx, a handler
// error) is resumed from its checkpoints by the next Rebuild call, here or
// in another instance, with no second Setup; two instances calling Rebuild
// at once share the one rebuild. A projection with no generation yet builds
// its first, active at once.
func (p *Projection[Tx]) Rebuild(ctx context.Context) error {
	gen, parts, err := p.startRebuild(ctx)
	if err != nil || gen == 0 {
		return err
	}
	r := p.newRunner()
	for {
		var head uint64
		for part := range parts {
			_, h, err := r.catchUp(ctx, gen, part, parts)
			if errors.Is(err, ErrGenerationRetired) {
				return p.rebuildEnded(ctx, gen)
			}
			if err != nil {
				return fmt.Errorf("projection %s: rebuild generation %d: %w", p.spec.Name, gen, err)
			}
			head = max(head, h)
		}
		err := p.store.SwitchGeneration(ctx, p.spec.Name, gen, head, p.activate(gen))
		switch {
		case err == nil:
			p.mu.Lock()
			p.generation, p.position = gen, head
			p.mu.Unlock()
			return nil
		case errors.Is(err, ErrNotCaughtUp):
			// Events arrived since the partitions caught up: again.
		case errors.Is(err, ErrGenerationRetired):
			return p.rebuildEnded(ctx, gen)
		default:
			return fmt.Errorf("projection %s: switch to generation %d: %w", p.spec.Name, gen, err)
		}
	}
}

// startRebuild returns the generation to rebuild and its partition count:
// the one in progress, or a new one. gen is 0 when there is nothing to
// switch: the projection had no generation, and its first is built.
func (p *Projection[Tx]) startRebuild(ctx context.Context) (gen, parts int, err error) {
	for {
		g, err := p.store.Generations(ctx, p.spec.Name)
		if err != nil {
			return 0, 0, fmt.Errorf("projection %s: read its generations: %w", p.spec.Name, err)
		}
		switch {
		case g.Latest == 0:
			// Nothing to replace: the first generation is active at once.
			_, err := p.CatchUp(ctx)
			return 0, 0, err
		case g.Latest > g.Active:
			return g.Latest, g.LatestPartitions, nil
		}
		gen := g.Latest + 1
		started, err := p.store.StartGeneration(ctx, p.spec.Name, gen, p.cfg.Partitions, p.setup(gen), nil)
		if err != nil {
			return 0, 0, fmt.Errorf("projection %s: start generation %d: %w", p.spec.Name, gen, err)
		}
		if started {
			return gen, p.cfg.Partitions, nil
		}
		// Another instance started one first: join it.
	}
}

// rebuildEnded reports the end of a rebuild of gen that another instance
// switched to (nil) or that was replaced.
func (p *Projection[Tx]) rebuildEnded(ctx context.Context, gen int) error {
	g, err := p.store.Generations(ctx, p.spec.Name)
	if err != nil {
		return fmt.Errorf("projection %s: read its generations: %w", p.spec.Name, err)
	}
	if g.Active >= gen {
		p.noteGeneration(g)
		return nil
	}
	return fmt.Errorf("projection %s: rebuild of generation %d: %w", p.spec.Name, gen, ErrGenerationRetired)
}

// generations returns the generation bookkeeping, after starting the first
// generation, active at once, if there is none.
func (p *Projection[Tx]) generations(ctx context.Context) (ProjectionGenerations, error) {
	g, err := p.store.Generations(ctx, p.spec.Name)
	if err != nil {
		return g, fmt.Errorf("projection %s: read its generations: %w", p.spec.Name, err)
	}
	if g.Latest == 0 {
		if _, err := p.store.StartGeneration(ctx, p.spec.Name, 1, p.cfg.Partitions, p.setup(1), p.activate(1)); err != nil {
			return g, fmt.Errorf("projection %s: start generation 1: %w", p.spec.Name, err)
		}
		// Started here or by another instance meanwhile.
		if g, err = p.store.Generations(ctx, p.spec.Name); err != nil {
			return g, fmt.Errorf("projection %s: read its generations: %w", p.spec.Name, err)
		}
	}
	if g.Active == 0 || g.ActivePartitions <= 0 {
		return g, fmt.Errorf("projection %s: the store has generation %d but no active generation", p.spec.Name, g.Latest)
	}
	p.noteGeneration(g)
	return g, nil
}

// noteGeneration records the active generation for Stats, and logs once
// that the configured partition count waits for a rebuild.
func (p *Projection[Tx]) noteGeneration(g ProjectionGenerations) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g.Active != p.generation {
		p.generation, p.position = g.Active, 0
	}
	if g.ActivePartitions != p.cfg.Partitions && !p.warned {
		p.warned = true
		p.cfg.Logger.Info("Projection runs with the active generation's partition count; the configured one applies from the next Rebuild", watermill.LogFields{
			"projection": p.spec.Name, "generation": g.Active, "partitions": g.ActivePartitions, "configured": p.cfg.Partitions,
		})
	}
}

// setup returns the store's callback for Setup of gen.
func (p *Projection[Tx]) setup(gen int) func(context.Context, Tx) error {
	return func(ctx context.Context, tx Tx) error {
		if p.spec.Setup == nil {
			return nil
		}
		if err := p.spec.Setup(ctx, ProjectionTx[Tx]{Tx: tx, Generation: gen}); err != nil {
			return fmt.Errorf("setup of generation %d: %w", gen, err)
		}
		return nil
	}
}

// activate returns the store's callback for Activate of gen.
func (p *Projection[Tx]) activate(gen int) func(context.Context, Tx, int) error {
	return func(ctx context.Context, tx Tx, previous int) error {
		if p.spec.Activate == nil {
			return nil
		}
		if err := p.spec.Activate(ctx, ProjectionTx[Tx]{Tx: tx, Generation: gen}, previous); err != nil {
			return fmt.Errorf("activate generation %d (previous %d): %w", gen, previous, err)
		}
		return nil
	}
}

// leases is Run's view of its partition leases.
type leases struct {
	owned []int
	// parts is the partition count the leases were decided for.
	parts int
	next  time.Time
	// joined is true once the instance has registered as a member.
	joined bool
}

// due reports whether the leases need renewing: their time has come (soon
// while the instance holds less than its share, see renew) or the
// partition count changed.
func (l *leases) due(parts int) bool {
	return !l.joined || parts != l.parts || !time.Now().Before(l.next)
}

// renew renews the instance's membership and leases, taking free
// partitions up to its fair share and releasing those above it.
func (p *Projection[Tx]) renew(ctx context.Context, l *leases, parts int) error {
	target := 0
	l.joined = true
	held, err := p.store.Lease(ctx, ProjectionLeaseRequest{
		Name:  p.spec.Name,
		Owner: p.owner,
		TTL:   p.cfg.Lease,
		Decide: func(members []string, leases map[int]string) []int {
			target = fairShare(members, p.owner, parts)
			return choosePartitions(p.owner, parts, target, leases)
		},
	})
	if err != nil {
		l.next = time.Now().Add(p.cfg.PollInterval)
		return fmt.Errorf("projection %s: renew its partition leases: %w", p.spec.Name, err)
	}
	l.owned, l.parts = held, parts
	// An instance short of its share waits for others to release
	// partitions: it looks again soon, not only at the next renewal.
	wait := p.cfg.Lease / 3
	if len(held) < target {
		wait = min(wait, p.cfg.PollInterval)
	}
	l.next = time.Now().Add(wait)
	p.mu.Lock()
	p.owned = held
	p.mu.Unlock()
	return nil
}

// leave releases Run's membership and leases, so that the other instances
// take its partitions over at once.
func (p *Projection[Tx]) leave(ctx context.Context, l *leases) {
	p.mu.Lock()
	p.owned = nil
	p.mu.Unlock()
	if !l.joined {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	if _, err := p.store.Lease(ctx, ProjectionLeaseRequest{Name: p.spec.Name, Owner: p.owner}); err != nil {
		p.cfg.Logger.Error("Projection cannot release its partitions; others take them over when the leases expire", err, watermill.LogFields{"projection": p.spec.Name})
	}
}

// fairShare is owner's share of parts partitions among the live members
// (sorted): parts/n each, one more for the first parts%n. Every instance
// computes the same split, whose shares add up to parts.
func fairShare(members []string, owner string, parts int) int {
	n := len(members)
	rank := slices.Index(members, owner)
	if rank < 0 {
		// Not registered (the store is wrong): count it last.
		n, rank = n+1, n
	}
	share := parts / n
	if rank < parts%n {
		share++
	}
	return share
}

// choosePartitions returns the partitions owner is to hold: those it holds,
// the lowest first, up to target, then free ones up to target.
func choosePartitions(owner string, parts, target int, leases map[int]string) []int {
	want := make([]int, 0, target)
	for part := 0; part < parts && len(want) < target; part++ {
		if leases[part] == owner {
			want = append(want, part)
		}
	}
	for part := 0; part < parts && len(want) < target; part++ {
		if _, taken := leases[part]; !taken {
			want = append(want, part)
		}
	}
	slices.Sort(want)
	return want
}
