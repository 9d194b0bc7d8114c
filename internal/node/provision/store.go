package provision

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	bolt "go.etcd.io/bbolt"
)

// Store errors.
var (
	ErrNotFound = errors.New("deployment not found")
	ErrExists   = errors.New("deployment already exists")
	ErrConflict = errors.New("name conflict")
)

var (
	bucketDeployments = []byte("deployments") // key(twin,contract) -> Deployment JSON with current results
	bucketHistory     = []byte("history")     // key(twin,contract) -> bucket seq -> Workload JSON
	bucketGlobal      = []byte("global")      // twin|name -> key(twin,contract), for sharable names
	bucketJobs        = []byte("jobs")        // seq -> Job JSON
	bucketUsed        = []byte("used")        // key(twin,contract)|name -> capacity of a running workload
)

// Store keeps deployments, the append-only history of workload results and
// the durable job queue in one bbolt file. Every write is committed (and
// fsynced) before it returns.
type Store struct {
	db *bolt.DB

	mu      sync.Mutex               // guards waiters
	waiters map[string]chan struct{} // depKey -> closed at the deployment's next committed change

	gmu     sync.Mutex // guards queue and leading (group.go)
	queue   []*groupOp // writes waiting for the next group commit
	leading bool       // a writer is committing; the next leader is queue[0]
}

// Changed returns a channel closed once a change of the deployment (a
// result, an update, its creation or removal) is committed after this
// call. Take it before reading the state it should signal a change of.
func (s *Store) Changed(twin uint32, contract uint64) <-chan struct{} {
	k := string(depKey(twin, contract))
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.waiters[k]
	if !ok {
		ch = make(chan struct{})
		s.waiters[k] = ch
	}
	return ch
}

// changed wakes the waiters of a deployment after a committed change.
func (s *Store) changed(twin uint32, contract uint64, err error) error {
	if err != nil {
		return err
	}
	k := string(depKey(twin, contract))
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiters[k]; ok {
		close(ch)
		delete(s.waiters, k)
	}
	return nil
}

// OpenStore opens (creating if needed) the store at path.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDeployments, bucketHistory, bucketGlobal, bucketJobs, bucketUsed, bucketBilling} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising store %s: %w", path, err)
	}
	return &Store{db: db, waiters: make(map[string]chan struct{})}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func depKey(twin uint32, contract uint64) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint32(k, twin)
	binary.BigEndian.PutUint64(k[4:], contract)
	return k
}

func parseDepKey(k []byte) (uint32, uint64) {
	return binary.BigEndian.Uint32(k), binary.BigEndian.Uint64(k[4:])
}

func globalKey(twin uint32, name string) []byte {
	k := make([]byte, 4, 4+len(name))
	binary.BigEndian.PutUint32(k, twin)
	return append(k, name...)
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func getDeployment(tx *bolt.Tx, twin uint32, contract uint64) (*gridtypes.Deployment, error) {
	v := tx.Bucket(bucketDeployments).Get(depKey(twin, contract))
	if v == nil {
		return nil, fmt.Errorf("%w: twin %d contract %d", ErrNotFound, twin, contract)
	}
	var d gridtypes.Deployment
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("decoding stored deployment %d-%d: %w", twin, contract, err)
	}
	return &d, nil
}

func putDeployment(tx *bolt.Tx, d *gridtypes.Deployment) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding deployment: %w", err)
	}
	return tx.Bucket(bucketDeployments).Put(depKey(d.TwinID, d.ContractID), b)
}

// claimNames reserves the sharable names of d for its twin.
func claimNames(tx *bolt.Tx, d *gridtypes.Deployment) error {
	g := tx.Bucket(bucketGlobal)
	me := depKey(d.TwinID, d.ContractID)
	for _, wl := range d.Workloads {
		if !wl.Type.Sharable() {
			continue
		}
		k := globalKey(d.TwinID, wl.Name)
		if owner := g.Get(k); owner != nil && string(owner) != string(me) {
			_, c := parseDepKey(owner)
			return fmt.Errorf("%w: a %s named %q already exists in deployment %d-%d", ErrConflict, wl.Type, wl.Name, d.TwinID, c)
		}
		if err := g.Put(k, me); err != nil {
			return err
		}
	}
	return nil
}

// releaseNames frees the sharable names of workloads that d owns.
func releaseNames(tx *bolt.Tx, twin uint32, contract uint64, names ...string) error {
	g := tx.Bucket(bucketGlobal)
	me := depKey(twin, contract)
	for _, n := range names {
		k := globalKey(twin, n)
		if owner := g.Get(k); owner != nil && string(owner) == string(me) {
			if err := g.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Create stores a new deployment and enqueues job, atomically.
func (s *Store) Create(d *gridtypes.Deployment, job Job) error {
	err := s.write(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDeployments).Get(depKey(d.TwinID, d.ContractID)) != nil {
			return fmt.Errorf("%w: twin %d contract %d", ErrExists, d.TwinID, d.ContractID)
		}
		if err := claimNames(tx, d); err != nil {
			return err
		}
		now := gridtypes.Timestamp(time.Now().Unix())
		for i := range d.Workloads {
			d.Workloads[i].Result = gridtypes.Result{Created: now, State: gridtypes.StateInit}
		}
		if err := putDeployment(tx, d); err != nil {
			return err
		}
		for i := range d.Workloads {
			if err := appendHistory(tx, d.TwinID, d.ContractID, &d.Workloads[i]); err != nil {
				return err
			}
		}
		return enqueue(tx, &job)
	})
	return s.changed(d.TwinID, d.ContractID, err)
}

// Update replaces the definition of a deployment (keeping the current
// results of the workloads that stay) and enqueues job, atomically. It
// fails unless d is the next version of what is stored.
//
// A running workload that the update changes keeps holding its capacity
// until the job settles it, and holds the larger of its old and new
// capacity meanwhile: the growth is reserved here, in the same transaction
// that stores the update. check is called for each such growth with what
// every workload of the store then uses (the capacity of workloads the
// update removes not counted, their job frees it first); an error from
// check refuses the whole update and nothing is stored.
func (s *Store) Update(d *gridtypes.Deployment, job Job, check func(name string, grow, used gridtypes.Capacity) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		cur, err := getDeployment(tx, d.TwinID, d.ContractID)
		if err != nil {
			return err
		}
		if cur.Version+1 != d.Version {
			return fmt.Errorf("deployment %d-%d changed meanwhile: version %d, update is %d", d.TwinID, d.ContractID, cur.Version, d.Version)
		}
		if err := claimNames(tx, d); err != nil {
			return err
		}
		var gone []string
		for _, wl := range cur.Workloads {
			if d.Get(wl.Name) == nil {
				gone = append(gone, wl.Name)
			}
		}
		if err := releaseNames(tx, d.TwinID, d.ContractID, gone...); err != nil {
			return err
		}
		used, err := sumUsed(tx)
		if err != nil {
			return err
		}
		for _, name := range gone {
			held, _, err := getUsed(tx, usedKey(d.TwinID, d.ContractID, name))
			if err != nil {
				return err
			}
			used = less(used, held)
		}
		now := gridtypes.Timestamp(time.Now().Unix())
		for i := range d.Workloads {
			wl := &d.Workloads[i]
			old := cur.Get(wl.Name)
			if old != nil && wl.Version != d.Version {
				wl.Result = old.Result // untouched by this update
				continue
			}
			// Added or changed: init until the job ran, so that a client
			// waiting for the new version does not see the old result.
			wl.Result = gridtypes.Result{Created: now, State: gridtypes.StateInit}
			if old != nil {
				wl.Result.Data = old.Result.Data
				if err := holdGrowth(tx, d, wl, &used, check); err != nil {
					return err
				}
			}
			if err := appendHistory(tx, d.TwinID, d.ContractID, wl); err != nil {
				return err
			}
		}
		if err := putDeployment(tx, d); err != nil {
			return err
		}
		return enqueue(tx, &job)
	})
	return s.changed(d.TwinID, d.ContractID, err)
}

// holdGrowth makes a running workload that an update changes hold the
// larger of its old and new capacity, after check accepted the growth. A
// workload that does not run holds nothing: its job reserves it.
func holdGrowth(tx *bolt.Tx, d *gridtypes.Deployment, wl *gridtypes.Workload, used *gridtypes.Capacity, check func(name string, grow, used gridtypes.Capacity) error) error {
	k := usedKey(d.TwinID, d.ContractID, wl.Name)
	held, running, err := getUsed(tx, k)
	if err != nil || !running {
		return err
	}
	c, err := wl.Capacity()
	if err != nil {
		return fmt.Errorf("capacity of %s: %w", wl.Name, err)
	}
	grow := less(c, held)
	if grow.Zero() {
		return nil
	}
	if err := check(wl.Name, grow, *used); err != nil {
		return err
	}
	*used = sum(*used, grow)
	return putUsed(tx, k, most(held, c))
}

// Get returns a deployment with the current result of every workload.
func (s *Store) Get(twin uint32, contract uint64) (*gridtypes.Deployment, error) {
	var d *gridtypes.Deployment
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		d, err = getDeployment(tx, twin, contract)
		return err
	})
	return d, err
}

// List returns the deployments of a twin.
func (s *Store) List(twin uint32) ([]*gridtypes.Deployment, error) {
	var out []*gridtypes.Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeployments).Cursor()
		prefix := depKey(twin, 0)[:4]
		for k, v := c.Seek(prefix); k != nil && string(k[:4]) == string(prefix); k, v = c.Next() {
			if err := appendDecoded(&out, v); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// All returns every stored deployment.
func (s *Store) All() ([]*gridtypes.Deployment, error) {
	var out []*gridtypes.Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeployments).ForEach(func(_, v []byte) error {
			return appendDecoded(&out, v)
		})
	})
	return out, err
}

// appendDecoded decodes the stored deployment v and appends it to out.
func appendDecoded(out *[]*gridtypes.Deployment, v []byte) error {
	var d gridtypes.Deployment
	if err := json.Unmarshal(v, &d); err != nil {
		return fmt.Errorf("decoding stored deployment: %w", err)
	}
	*out = append(*out, &d)
	return nil
}

func appendHistory(tx *bolt.Tx, twin uint32, contract uint64, wl *gridtypes.Workload) error {
	h, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists(depKey(twin, contract))
	if err != nil {
		return err
	}
	seq, err := h.NextSequence()
	if err != nil {
		return err
	}
	b, err := json.Marshal(wl)
	if err != nil {
		return fmt.Errorf("encoding workload: %w", err)
	}
	return h.Put(seqKey(seq), b)
}

// SetResult records a new result of a workload: appended to the history and
// made current in the deployment (if the workload is still part of it).
func (s *Store) SetResult(twin uint32, contract uint64, wl gridtypes.Workload) error {
	err := s.write(func(tx *bolt.Tx) error {
		d, err := getDeployment(tx, twin, contract)
		if err != nil {
			return err
		}
		if cur := d.Get(wl.Name); cur != nil && cur.Type == wl.Type {
			cur.Result = wl.Result
			if err := putDeployment(tx, d); err != nil {
				return err
			}
			if err := setUsed(tx, twin, contract, cur); err != nil {
				return err
			}
		} else if err := tx.Bucket(bucketUsed).Delete(usedKey(twin, contract, wl.Name)); err != nil {
			return err
		}
		return appendHistory(tx, twin, contract, &wl)
	})
	return s.changed(twin, contract, err)
}

// Changes returns every recorded state of every workload of a deployment,
// oldest first.
func (s *Store) Changes(twin uint32, contract uint64) ([]gridtypes.Workload, error) {
	var out []gridtypes.Workload
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDeployments).Get(depKey(twin, contract)) == nil {
			return fmt.Errorf("%w: twin %d contract %d", ErrNotFound, twin, contract)
		}
		h := tx.Bucket(bucketHistory).Bucket(depKey(twin, contract))
		if h == nil {
			return nil
		}
		return h.ForEach(func(_, v []byte) error {
			var wl gridtypes.Workload
			if err := json.Unmarshal(v, &wl); err != nil {
				return fmt.Errorf("decoding history: %w", err)
			}
			out = append(out, wl)
			return nil
		})
	})
	return out, err
}

// Delete removes a deployment, its history and its names.
func (s *Store) Delete(twin uint32, contract uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		d, err := getDeployment(tx, twin, contract)
		if err != nil {
			return err
		}
		var names []string
		for _, wl := range d.Workloads {
			names = append(names, wl.Name)
		}
		if err := releaseNames(tx, twin, contract, names...); err != nil {
			return err
		}
		if err := tx.Bucket(bucketDeployments).Delete(depKey(twin, contract)); err != nil {
			return err
		}
		for _, wl := range d.Workloads {
			if err := tx.Bucket(bucketUsed).Delete(usedKey(twin, contract, wl.Name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketBilling).Delete(depKey(twin, contract)); err != nil {
			return err
		}
		if tx.Bucket(bucketHistory).Bucket(depKey(twin, contract)) != nil {
			return tx.Bucket(bucketHistory).DeleteBucket(depKey(twin, contract))
		}
		return nil
	})
	return s.changed(twin, contract, err)
}

func usedKey(twin uint32, contract uint64, name string) []byte {
	return append(depKey(twin, contract), name...)
}

// setUsed records the capacity a workload holds: that of its definition
// while it runs (ok or paused); for one left unchanged by a refused update,
// what it held since the update (the larger of its old and new capacity:
// the old configuration keeps running); nothing in any other state.
func setUsed(tx *bolt.Tx, twin uint32, contract uint64, wl *gridtypes.Workload) error {
	k := usedKey(twin, contract, wl.Name)
	switch {
	case wl.Result.State.IsOkay():
	case wl.Result.State == gridtypes.StateUnChanged:
		if _, held, err := getUsed(tx, k); err != nil || held {
			return err
		}
	default:
		return tx.Bucket(bucketUsed).Delete(k)
	}
	c, err := wl.Capacity()
	if err != nil {
		return fmt.Errorf("capacity of %s: %w", wl.Name, err)
	}
	return putUsed(tx, k, c)
}

func putUsed(tx *bolt.Tx, k []byte, c gridtypes.Capacity) error {
	v := make([]byte, 40)
	for i, x := range []uint64{c.CRU, c.MRU, c.SRU, c.HRU, c.IPV4U} {
		binary.BigEndian.PutUint64(v[i*8:], x)
	}
	return tx.Bucket(bucketUsed).Put(k, v)
}

func decodeUsed(v []byte) (gridtypes.Capacity, error) {
	if len(v) != 40 {
		return gridtypes.Capacity{}, fmt.Errorf("malformed used-capacity record of %d bytes", len(v))
	}
	return gridtypes.Capacity{
		CRU: binary.BigEndian.Uint64(v), MRU: binary.BigEndian.Uint64(v[8:]), SRU: binary.BigEndian.Uint64(v[16:]),
		HRU: binary.BigEndian.Uint64(v[24:]), IPV4U: binary.BigEndian.Uint64(v[32:]),
	}, nil
}

// getUsed returns the capacity a workload holds, and whether it holds any
// (has a record).
func getUsed(tx *bolt.Tx, k []byte) (gridtypes.Capacity, bool, error) {
	v := tx.Bucket(bucketUsed).Get(k)
	if v == nil {
		return gridtypes.Capacity{}, false, nil
	}
	c, err := decodeUsed(v)
	return c, true, err
}

// sumUsed sums every record, saturating: a sum never wraps around to look
// small.
func sumUsed(tx *bolt.Tx) (gridtypes.Capacity, error) {
	var used gridtypes.Capacity
	err := tx.Bucket(bucketUsed).ForEach(func(_, v []byte) error {
		c, err := decodeUsed(v)
		if err != nil {
			return err
		}
		used = sum(used, c)
		return nil
	})
	return used, err
}

// Used sums the capacity every workload holds (running ones, and those an
// update left unchanged), from an index kept with each result so that it
// does not decode every deployment.
func (s *Store) Used() (gridtypes.Capacity, error) {
	var used gridtypes.Capacity
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		used, err = sumUsed(tx)
		return err
	})
	return used, err
}

// usage returns, in one read, what every workload holds and what the
// workload name of a deployment holds itself.
func (s *Store) usage(twin uint32, contract uint64, name string) (used, held gridtypes.Capacity, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if used, err = sumUsed(tx); err != nil {
			return err
		}
		held, _, err = getUsed(tx, usedKey(twin, contract, name))
		return err
	})
	return used, held, err
}

// Active reports whether any workload of d still runs or is on its way
// (not deleted and not in error).
func Active(d *gridtypes.Deployment) bool {
	for _, wl := range d.Workloads {
		if !wl.Result.State.IsAny(gridtypes.StateDeleted, gridtypes.StateError) {
			return true
		}
	}
	return false
}

// Deleted reports whether every workload of d is deleted: what the engine
// purges at start.
func Deleted(d *gridtypes.Deployment) bool {
	for _, wl := range d.Workloads {
		if wl.Result.State != gridtypes.StateDeleted {
			return false
		}
	}
	return len(d.Workloads) > 0
}

// Job kinds.
const (
	JobProvision   = "provision"   // provision every workload of the deployment
	JobUpdate      = "update"      // apply Ops of an update
	JobDeprovision = "deprovision" // remove every workload, Reason says why
	// JobDecommission removes one workload the node gave up on (Name; a VM
	// that kept crashing), Reason says why.
	JobDecommission = "decommission"
	// JobFail marks one workload (Name) failed with Reason, leaving what
	// is left of it in place: the node lost what it ran on (a failed
	// pool).
	JobFail = "fail"
)

// Job is one durable unit of work on a deployment. It leaves the queue only
// after it finished, so a crash replays it; managers are idempotent.
type Job struct {
	Seq      uint64 `json:"seq"`
	Kind     string `json:"kind"`
	Twin     uint32 `json:"twin"`
	Contract uint64 `json:"contract"`
	// Removed are the workloads an update takes away (gone from the stored
	// deployment, so they travel with the job).
	Removed []gridtypes.Workload `json:"removed,omitempty"`
	// Updated names the running workloads an update changes in place;
	// changed workloads that did not run are provisioned afresh.
	Updated []string `json:"updated,omitempty"`
	// NoValidation marks boot-time re-provisioning.
	NoValidation bool   `json:"no_validation,omitempty"`
	Reason       string `json:"reason,omitempty"`
	// Name is the workload of a decommission.
	Name string `json:"name,omitempty"`
}

func enqueue(tx *bolt.Tx, job *Job) error {
	b := tx.Bucket(bucketJobs)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	job.Seq = seq
	v, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encoding job: %w", err)
	}
	return b.Put(seqKey(seq), v)
}

// Enqueue adds a job to the queue and returns it with its sequence.
func (s *Store) Enqueue(job Job) (Job, error) {
	err := s.write(func(tx *bolt.Tx) error { return enqueue(tx, &job) })
	return job, err
}

// Jobs returns the queued jobs in order.
func (s *Store) Jobs() ([]Job, error) {
	var out []Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("decoding job: %w", err)
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

// Done removes a finished job.
func (s *Store) Done(seq uint64) error {
	return s.write(func(tx *bolt.Tx) error { return tx.Bucket(bucketJobs).Delete(seqKey(seq)) })
}
