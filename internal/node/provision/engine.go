// Package provision is the node's provision engine: a bbolt store of
// deployments with an append-only history of workload results, a durable
// job queue, and an engine that runs jobs through the managers of each
// workload type in the install order of the original (reverse order to
// remove). Jobs of different deployments run in parallel, the workloads of
// one deployment in order. A job leaves the queue only when it finished, and
// managers are idempotent, so a crash or reboot replays safely.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
)

// Workload is what a manager gets: the workload, its id and its deployment.
type Workload struct {
	gridtypes.Workload
	ID         gridtypes.WorkloadID
	Deployment *gridtypes.Deployment
}

// Manager provisions the workloads of one type. Provision must be
// idempotent: called for a workload that already exists, it returns the
// existing result and changes nothing.
type Manager interface {
	Provision(ctx context.Context, wl *Workload) (any, error)
	Deprovision(ctx context.Context, wl *Workload) error
}

// Updater is a Manager that can change a workload in place.
type Updater interface {
	Update(ctx context.Context, wl *Workload) (any, error)
}

// UnchangedError is returned by Update when the change cannot be applied
// and the old configuration keeps running (state "unchanged").
type UnchangedError struct{ Err error }

func (e *UnchangedError) Error() string { return e.Err.Error() }
func (e *UnchangedError) Unwrap() error { return e.Err }

// Unchanged wraps err as an UnchangedError.
func Unchanged(err error) error { return &UnchangedError{Err: err} }

// ErrNoCapacity is returned when a workload does not fit on the node.
var ErrNoCapacity = errors.New("not enough capacity")

// Resources tells the engine what the node has and what the system keeps.
type Resources interface {
	Total() gridtypes.Capacity
	Reserved() gridtypes.Capacity
}

// installOrder is the order in which types are provisioned (reverse to
// remove), as the original: disks and volumes first, then networks, IPs,
// machines and logs, then the rest.
var installOrder = []gridtypes.WorkloadType{
	gridtypes.ZMountType, gridtypes.VolumeType, gridtypes.QuantumSafeFSType,
	gridtypes.NetworkType, gridtypes.NetworkLightType, gridtypes.PublicIPv4Type, gridtypes.PublicIPType,
	gridtypes.ZMachineType, gridtypes.ZMachineLightType, gridtypes.ZLogsType,
	gridtypes.ZDBType, gridtypes.GatewayNameProxyType, gridtypes.GatewayFQDNProxyType,
}

func typeRank(t gridtypes.WorkloadType) int {
	for i, x := range installOrder {
		if x == t {
			return i
		}
	}
	return len(installOrder)
}

// sortInstall orders workloads for installation: by type rank, then (for
// disks and volumes) bigger first, then as given.
func sortInstall(wls []*gridtypes.Workload) {
	size := func(w *gridtypes.Workload) uint64 {
		c, err := w.Capacity()
		if err != nil {
			return 0
		}
		return c.SRU
	}
	sort.SliceStable(wls, func(i, j int) bool {
		ri, rj := typeRank(wls[i].Type), typeRank(wls[j].Type)
		if ri != rj {
			return ri < rj
		}
		if wls[i].Type.IsAny(gridtypes.ZMountType, gridtypes.VolumeType) {
			return size(wls[i]) > size(wls[j])
		}
		return false
	})
}

// Config of the engine.
type Config struct {
	// Workers bounds how many jobs do provisioning work at once. A job
	// waiting for a result to be committed to the store gives its worker
	// to another job meanwhile, and takes one again to go on.
	Workers int
	// OnJobDone, if set, is called after each job with the deployment it
	// touched (used to report capacity per contract).
	OnJobDone func(twin uint32, contract uint64)
	// Observe, if set, is told how long each manager call took: op is
	// "provision" (a new workload), "restore" (one rebuilt at boot) or
	// "deprovision"; err is the manager's.
	Observe func(t gridtypes.WorkloadType, op string, took time.Duration, err error)
}

// Engine runs the jobs of the store.
type Engine struct {
	cfg      Config
	store    *Store
	managers map[gridtypes.WorkloadType]Manager
	res      Resources
	log      *slog.Logger
	wake     chan struct{}
	workers  chan struct{} // a token per job doing provisioning work, Config.Workers at most

	mu       sync.Mutex // guards pending, inflight, working, reserved
	pending  []Job
	inflight map[string]bool                             // deployment key -> a job runs
	working  map[string]bool                             // deployment key -> its job holds a worker token
	reserved map[gridtypes.WorkloadID]gridtypes.Capacity // capacity of workloads being provisioned
}

// NewEngine returns an engine over store with a manager per type.
func NewEngine(cfg Config, store *Store, managers map[gridtypes.WorkloadType]Manager, res Resources, log *slog.Logger) *Engine {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	return &Engine{
		cfg: cfg, store: store, managers: managers, res: res, log: log,
		wake:     make(chan struct{}, 1),
		workers:  make(chan struct{}, cfg.Workers),
		inflight: map[string]bool{},
		working:  map[string]bool{},
		reserved: map[gridtypes.WorkloadID]gridtypes.Capacity{},
	}
}

// Supports reports whether the engine has a manager for t.
func (e *Engine) Supports(t gridtypes.WorkloadType) bool { _, ok := e.managers[t]; return ok }

// Types are the workload types the engine has a manager for, sorted.
func (e *Engine) Types() []gridtypes.WorkloadType {
	out := make([]gridtypes.WorkloadType, 0, len(e.managers))
	for t := range e.managers {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// CanUpdate reports whether the manager of t can update in place.
func (e *Engine) CanUpdate(t gridtypes.WorkloadType) bool {
	_, ok := e.managers[t].(Updater)
	return ok
}

// Store returns the engine's store.
func (e *Engine) Store() *Store { return e.store }

// Provision stores a new deployment and queues its provisioning.
func (e *Engine) Provision(d *gridtypes.Deployment) error {
	if err := e.store.Create(d, Job{Kind: JobProvision, Twin: d.TwinID, Contract: d.ContractID}); err != nil {
		return err
	}
	e.reload()
	return nil
}

// Update stores the new definition of a deployment and queues the ops.
// Running workloads that grow reserve their growth at once, in the same
// transaction that stores the update: if the node cannot give it, the
// update is refused with ErrNoCapacity naming the workload, nothing is
// stored and the deployment keeps running as it was.
func (e *Engine) Update(d *gridtypes.Deployment, ops []gridtypes.Op) error {
	cur, err := e.store.Get(d.TwinID, d.ContractID)
	if err != nil {
		return err
	}
	if err := e.checkNotInGrace(d.TwinID, d.ContractID); err != nil {
		return err
	}
	job := Job{Kind: JobUpdate, Twin: d.TwinID, Contract: d.ContractID}
	for _, op := range ops {
		switch op.Kind {
		case gridtypes.OpRemove:
			job.Removed = append(job.Removed, *op.Workload)
		case gridtypes.OpUpdate:
			if old := cur.Get(op.Workload.Name); old != nil && old.Result.State.IsAny(gridtypes.StateOk, gridtypes.StateUnChanged) {
				job.Updated = append(job.Updated, op.Workload.Name)
			}
		}
	}
	// e.mu makes the check and the store's write one step against the
	// reservations of workloads being provisioned.
	e.mu.Lock()
	defer e.mu.Unlock()
	total, sys := e.res.Total(), e.res.Reserved()
	var pending gridtypes.Capacity
	for _, c := range e.reserved {
		pending = sum(pending, c)
	}
	check := func(name string, grow, used gridtypes.Capacity) error {
		if err := fit(grow, sum(used, pending), sys, total); err != nil {
			return fmt.Errorf("workload %q cannot grow, the deployment stays as it was: %w", name, err)
		}
		return nil
	}
	if err := e.store.Update(d, job, check); err != nil {
		return err
	}
	e.reload()
	return nil
}

// Deprovision queues the removal of a deployment.
func (e *Engine) Deprovision(twin uint32, contract uint64, reason string) error {
	if _, err := e.store.Get(twin, contract); err != nil {
		return err
	}
	if _, err := e.store.Enqueue(Job{Kind: JobDeprovision, Twin: twin, Contract: contract, Reason: reason}); err != nil {
		return err
	}
	e.reload()
	return nil
}

// Decommission removes one workload the node gave up on (a VM that kept
// crashing): its manager cleans up and the workload ends deleted with
// "workload decommissioned by system, reason: ...". It goes through the
// queue, so it is ordered with the deployment's other jobs.
func (e *Engine) Decommission(id gridtypes.WorkloadID, reason string) error {
	twin, contract, name, err := id.Parts()
	if err != nil {
		return err
	}
	if _, err := e.store.Get(twin, contract); err != nil {
		return err
	}
	if _, err := e.store.Enqueue(Job{Kind: JobDecommission, Twin: twin, Contract: contract, Name: name, Reason: reason}); err != nil {
		return err
	}
	e.reload()
	return nil
}

// Fail marks one workload failed with reason, without removing it: what it
// ran on is gone (its pool failed). Its state turns error with the reason
// (zos.deployment.get shows it); a restart does not rebuild it. It goes
// through the queue, ordered with the deployment's other jobs.
func (e *Engine) Fail(id gridtypes.WorkloadID, reason string) error {
	twin, contract, name, err := id.Parts()
	if err != nil {
		return err
	}
	if _, err := e.store.Get(twin, contract); err != nil {
		return err
	}
	if _, err := e.store.Enqueue(Job{Kind: JobFail, Twin: twin, Contract: contract, Name: name, Reason: reason}); err != nil {
		return err
	}
	e.reload()
	return nil
}

// reload re-reads the queue and wakes the scheduler.
func (e *Engine) reload() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run re-provisions every active deployment (a start is a reboot: the
// managers see what exists and leave it), purges fully deleted ones, then
// runs queued jobs until ctx ends.
//
// Networks come first after a start: a VM names a network resource that
// another deployment of its twin holds, so while a job queued at start
// (boot's re-provisioning or one a crash interrupted) of a deployment
// holding a network is pending, only such jobs start.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.boot(); err != nil {
		return err
	}
	first, err := e.networkJobs()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		jobs, err := e.store.Jobs()
		if err != nil {
			return fmt.Errorf("reading job queue: %w", err)
		}
		first = stillQueued(first, jobs)
		e.mu.Lock()
		e.pending = jobs
		var start []Job
		blocked := map[string]bool{}
		for _, j := range e.pending {
			k := string(depKey(j.Twin, j.Contract))
			if e.inflight[k] || blocked[k] || len(first) > 0 && !first[j.Seq] {
				blocked[k] = true
				continue
			}
			blocked[k] = true
			start = append(start, j)
		}
		e.mu.Unlock()
		for _, j := range start {
			select {
			case e.workers <- struct{}{}:
			case <-ctx.Done():
				return nil
			default:
				continue // all workers busy: picked up after the next wake
			}
			k := string(depKey(j.Twin, j.Contract))
			e.mu.Lock()
			e.inflight[k] = true
			e.working[k] = true
			e.mu.Unlock()
			wg.Add(1)
			go func(j Job) {
				defer wg.Done()
				finished := e.runJob(ctx, j)
				// The job's results are committed: its worker is free for
				// another deployment while the job's removal from the queue
				// commits. The deployment stays in flight until then, so
				// that the job is not started again; a crash before that
				// commit replays it, which finds its work done.
				e.mu.Lock()
				delete(e.working, k)
				e.mu.Unlock()
				<-e.workers
				e.reload()
				if finished {
					e.finish(j)
				}
				e.mu.Lock()
				delete(e.inflight, k)
				e.mu.Unlock()
				e.reload()
			}(j)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		}
	}
}

// networkJobs are the queued jobs of deployments holding a network
// resource, by sequence number.
func (e *Engine) networkJobs() (map[uint64]bool, error) {
	jobs, err := e.store.Jobs()
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, j := range jobs {
		d, err := e.store.Get(j.Twin, j.Contract)
		if err == nil && len(d.ByType(gridtypes.NetworkType, gridtypes.NetworkLightType)) > 0 {
			out[j.Seq] = true
		}
	}
	return out, nil
}

// stillQueued keeps the jobs of set that are still in the queue (a job
// leaves it when it is done).
func stillQueued(set map[uint64]bool, jobs []Job) map[uint64]bool {
	if len(set) == 0 {
		return set
	}
	queued := make(map[uint64]bool, len(jobs))
	for _, j := range jobs {
		queued[j.Seq] = true
	}
	for seq := range set {
		if !queued[seq] {
			delete(set, seq)
		}
	}
	return set
}

// boot purges deleted deployments and queues re-provisioning of active ones
// that have no job queued.
func (e *Engine) boot() error {
	all, err := e.store.All()
	if err != nil {
		return err
	}
	jobs, err := e.store.Jobs()
	if err != nil {
		return err
	}
	queued := map[string]bool{}
	for _, j := range jobs {
		queued[string(depKey(j.Twin, j.Contract))] = true
	}
	for _, d := range all {
		if Deleted(d) {
			if err := e.store.Delete(d.TwinID, d.ContractID); err != nil {
				return err
			}
			continue
		}
		if !Active(d) {
			// Failed workloads stay visible (zos.deployment.get shows
			// why) until the contract is canceled; nothing to rebuild.
			continue
		}
		if !queued[string(depKey(d.TwinID, d.ContractID))] {
			if _, err := e.store.Enqueue(Job{Kind: JobProvision, Twin: d.TwinID, Contract: d.ContractID, NoValidation: true}); err != nil {
				return err
			}
		}
		// A contract in its grace period is paused again after what the
		// restart rebuilt (a VM started anew runs until then).
		st, err := e.store.Billing(d.TwinID, d.ContractID)
		if err != nil {
			return err
		}
		if st.State == billing.StateGrace {
			if _, err := e.store.Enqueue(Job{Kind: JobPause, Twin: d.TwinID, Contract: d.ContractID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// runJob runs a job and reports whether it finished (it did not if ctx
// ended: the job stays queued and replays on the next start); finish
// removes a finished job from the queue.
func (e *Engine) runJob(ctx context.Context, j Job) bool {
	log := e.log.With("job", j.Seq, "kind", j.Kind, "deployment", gridtypes.NewDeploymentID(j.Twin, j.Contract))
	// Every job works on the stored deployment; one that is gone (purged,
	// never stored) leaves nothing to do.
	d, err := e.store.Get(j.Twin, j.Contract)
	if errors.Is(err, ErrNotFound) {
		err = nil
	} else if err == nil {
		switch j.Kind {
		case JobProvision:
			err = e.provision(ctx, j, d)
		case JobUpdate:
			err = e.update(ctx, j, d)
		case JobDeprovision:
			err = e.deprovision(ctx, j, d)
		case JobDecommission:
			err = e.decommission(ctx, j, d)
		case JobFail:
			err = e.fail(j, d)
		case JobPause:
			err = e.pause(ctx, d)
		case JobResume:
			err = e.resume(ctx, d)
		default:
			err = fmt.Errorf("unknown job kind %q", j.Kind)
		}
	}
	if ctx.Err() != nil {
		// Shutting down: keep the job, it replays on the next start.
		return false
	}
	if err != nil {
		log.Error("job_failed", "err", err)
	}
	return true
}

// finish removes a finished job from the queue.
func (e *Engine) finish(j Job) {
	if err := e.store.Done(j.Seq); err != nil {
		e.log.Error("job_done_failed", "job", j.Seq, "err", err)
	}
	if e.cfg.OnJobDone != nil {
		e.cfg.OnJobDone(j.Twin, j.Contract)
	}
}

// inInstallOrder is d's workloads in install order (uninstall: reversed).
func inInstallOrder(d *gridtypes.Deployment) []*gridtypes.Workload {
	wls := make([]*gridtypes.Workload, 0, len(d.Workloads))
	for i := range d.Workloads {
		wls = append(wls, &d.Workloads[i])
	}
	sortInstall(wls)
	return wls
}

// Data decodes a workload's data as T, the data type of its manager's
// workload type (*gridtypes.ZMachine, ...); another type is an error.
func Data[T gridtypes.WorkloadData](wl *Workload) (T, error) {
	var zero T
	d, err := wl.WorkloadData()
	if err != nil {
		return zero, err
	}
	t, ok := d.(T)
	if !ok {
		return zero, fmt.Errorf("workload %s is a %s, which does not carry %T data", wl.Name, wl.Type, zero)
	}
	return t, nil
}

func (e *Engine) workload(d *gridtypes.Deployment, wl *gridtypes.Workload) *Workload {
	return &Workload{Workload: *wl, ID: d.WorkloadID(wl.Name), Deployment: d}
}

// record stores a new result of wl.
func (e *Engine) record(d *gridtypes.Deployment, wl gridtypes.Workload, state gridtypes.ResultState, data any, msg string) error {
	wl.Result = gridtypes.Result{Created: gridtypes.Timestamp(time.Now().Unix()), State: state, Error: msg}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("encoding result of %s: %w", wl.Name, err)
		}
		wl.Result.Data = b
	}
	if err := e.commitIdle(d, func() error { return e.store.SetResult(d.TwinID, d.ContractID, wl) }); err != nil {
		return err
	}
	// The job's copy follows, so that later workloads of the deployment
	// see it (a VM reads the address its ip workload got).
	if p := d.Get(wl.Name); p != nil {
		p.Result = wl.Result
	}
	return nil
}

// commitIdle runs write, a store write of d's job, with the job's worker
// token given back meanwhile: waiting for a commit (an fsync) is no
// provisioning work, and another job can start. The token is taken back
// before returning, so the job goes on as it was. Outside a job (at boot)
// it only runs write.
func (e *Engine) commitIdle(d *gridtypes.Deployment, write func() error) error {
	k := string(depKey(d.TwinID, d.ContractID))
	e.mu.Lock()
	held := e.working[k]
	delete(e.working, k)
	e.mu.Unlock()
	if !held {
		return write()
	}
	<-e.workers
	e.reload()
	err := write()
	e.workers <- struct{}{}
	e.mu.Lock()
	e.working[k] = true
	e.mu.Unlock()
	return err
}

func (e *Engine) provision(ctx context.Context, j Job, d *gridtypes.Deployment) error {
	wls := inInstallOrder(d)
	for _, wl := range wls {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := e.install(ctx, d, wl, j.NoValidation); err != nil {
			return err
		}
	}
	return nil
}

// install provisions one workload unless it is already done (or failed, or
// was deleted: those are never retried by themselves). At boot, workloads
// that run (ok, paused, or unchanged: the configuration before a refused
// update) are provisioned again so that what the reboot lost is rebuilt; a
// result identical to the current one is not recorded again, and an
// unchanged workload stays unchanged.
func (e *Engine) install(ctx context.Context, d *gridtypes.Deployment, wl *gridtypes.Workload, boot bool) error {
	state := wl.Result.State
	if state.IsAny(gridtypes.StateDeleted, gridtypes.StateError) {
		return nil
	}
	running := state.IsOkay() || state == gridtypes.StateUnChanged
	if running && !boot {
		return nil
	}
	mgr, ok := e.managers[wl.Type]
	if !ok {
		return e.record(d, *wl, gridtypes.StateError, nil, fmt.Sprintf("workload type %q is not supported on this node", wl.Type))
	}
	w := e.workload(d, wl)
	if !running {
		release, err := e.reserve(w)
		if err != nil {
			return e.record(d, *wl, gridtypes.StateError, nil, err.Error())
		}
		defer release()
	}
	start := time.Now()
	data, err := mgr.Provision(ctx, w)
	if e.cfg.Observe != nil && ctx.Err() == nil {
		op := "provision"
		if running {
			op = "restore"
		}
		e.cfg.Observe(wl.Type, op, time.Since(start), err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		if running {
			// It ran before the reboot and cannot be rebuilt now.
			return e.record(d, *wl, gridtypes.StateError, nil, fmt.Sprintf("restoring after restart: %v", err))
		}
		return e.record(d, *wl, gridtypes.StateError, nil, err.Error())
	}
	if running {
		if state == gridtypes.StateUnChanged {
			return nil
		}
		b, _ := json.Marshal(data)
		if string(b) == string(wl.Result.Data) {
			return nil
		}
		if state == gridtypes.StatePaused {
			// Still paused: the pause job queued at boot pauses it again.
			return e.record(d, *wl, gridtypes.StatePaused, data, wl.Result.Error)
		}
	}
	return e.record(d, *wl, gridtypes.StateOk, data, "")
}

// reserve checks that w fits next to everything else and holds its capacity
// until release. What w holds already in the store (a workload that ran
// before) is counted once.
func (e *Engine) reserve(w *Workload) (release func(), err error) {
	need, err := w.Capacity()
	if err != nil {
		return nil, err
	}
	if need.Zero() {
		return func() {}, nil
	}
	// The store is read under e.mu: a workload that finished meanwhile is
	// either still reserved here or already recorded there.
	e.mu.Lock()
	defer e.mu.Unlock()
	used, held, err := e.store.usage(w.Deployment.TwinID, w.Deployment.ContractID, w.Name)
	if err != nil {
		return nil, err
	}
	for _, c := range e.reserved {
		used = sum(used, c)
	}
	need = less(need, held)
	if err := fit(need, used, e.res.Reserved(), e.res.Total()); err != nil {
		return nil, err
	}
	e.reserved[w.ID] = need
	return func() {
		e.mu.Lock()
		delete(e.reserved, w.ID)
		e.mu.Unlock()
	}, nil
}

// Used sums the capacity every workload holds: those that run (ok or
// paused) and those an update left unchanged.
func (e *Engine) Used() (gridtypes.Capacity, error) { return e.store.Used() }

// UsedBy sums the capacity of the running workloads of one deployment,
// saturating.
func UsedBy(d *gridtypes.Deployment) (gridtypes.Capacity, error) {
	var used gridtypes.Capacity
	for i := range d.Workloads {
		if !d.Workloads[i].Result.State.IsOkay() {
			continue
		}
		c, err := d.Workloads[i].Capacity()
		if err != nil {
			return used, err
		}
		used = sum(used, c)
	}
	return used, nil
}

func (e *Engine) update(ctx context.Context, j Job, d *gridtypes.Deployment) error {
	for i := range j.Removed {
		wl := j.Removed[i]
		if wl.Result.State.IsAny(gridtypes.StateDeleted) {
			continue
		}
		if err := e.uninstall(ctx, d, &wl, "removed by an update"); err != nil {
			return err
		}
	}
	updated := map[string]bool{}
	for _, n := range j.Updated {
		updated[n] = true
	}
	wls := inInstallOrder(d)
	for _, wl := range wls {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !updated[wl.Name] || wl.Result.State != gridtypes.StateInit {
			// Added, not running before, or already updated (replay).
			if err := e.install(ctx, d, wl, false); err != nil {
				return err
			}
			continue
		}
		up, ok := e.managers[wl.Type].(Updater)
		if !ok {
			if err := e.record(d, *wl, gridtypes.StateUnChanged, wl.Result.Data, fmt.Sprintf("a %s cannot be updated", wl.Type)); err != nil {
				return err
			}
			continue
		}
		data, err := up.Update(ctx, e.workload(d, wl))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var unchanged *UnchangedError
		switch {
		case errors.As(err, &unchanged):
			err = e.record(d, *wl, gridtypes.StateUnChanged, json.RawMessage(wl.Result.Data), unchanged.Error())
		case err != nil:
			err = e.record(d, *wl, gridtypes.StateError, nil, err.Error())
		default:
			err = e.record(d, *wl, gridtypes.StateOk, data, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// uninstall removes one workload and records the outcome.
func (e *Engine) uninstall(ctx context.Context, d *gridtypes.Deployment, wl *gridtypes.Workload, reason string) error {
	mgr, ok := e.managers[wl.Type]
	if !ok {
		return e.record(d, *wl, gridtypes.StateDeleted, nil, reason)
	}
	start := time.Now()
	err := mgr.Deprovision(ctx, e.workload(d, wl))
	if e.cfg.Observe != nil && ctx.Err() == nil {
		e.cfg.Observe(wl.Type, "deprovision", time.Since(start), err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.record(d, *wl, gridtypes.StateError, nil, fmt.Sprintf("deleting: %v", err))
	}
	return e.record(d, *wl, gridtypes.StateDeleted, nil, reason)
}

func (e *Engine) deprovision(ctx context.Context, j Job, d *gridtypes.Deployment) error {
	wls := inInstallOrder(d)
	for i := len(wls) - 1; i >= 0; i-- {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wl := wls[i]
		if wl.Result.State == gridtypes.StateDeleted {
			continue
		}
		if err := e.uninstall(ctx, d, wl, j.Reason); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) fail(j Job, d *gridtypes.Deployment) error {
	wl := d.Get(j.Name)
	if wl == nil || wl.Result.State.IsAny(gridtypes.StateDeleted, gridtypes.StateError) {
		return nil
	}
	e.log.Error("workload_failed", "workload", d.WorkloadID(wl.Name), "reason", j.Reason)
	return e.record(d, *wl, gridtypes.StateError, nil, j.Reason)
}

func (e *Engine) decommission(ctx context.Context, j Job, d *gridtypes.Deployment) error {
	wl := d.Get(j.Name)
	if wl == nil || !wl.Result.State.IsOkay() {
		return nil
	}
	return e.uninstall(ctx, d, wl, "workload decommissioned by system, reason: "+j.Reason)
}
