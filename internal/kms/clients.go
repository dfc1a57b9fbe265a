package kms

import (
	"sync"
	"time"

	"kmsd/internal/wire"
)

// ClientList counts distinct client machine IDs per application the way
// vlmcsd -M1 does (kms-server.md §4.3): a new CMID raises the count by one
// until the list is full; a repeated CMID leaves it unchanged. With Expiry
// set, a CMID not seen for that long leaves the list and the count falls,
// as on a genuine host (30 days).
type ClientList struct {
	// Expiry removes CMIDs not seen for this long; 0 keeps them forever
	// (vlmcsd's behaviour).
	Expiry time.Duration

	mu   sync.Mutex
	apps []clientApp
}

type clientEntry struct {
	id   wire.GUID
	seen time.Time
}

type clientApp struct {
	max       int
	current   uint32
	slots     []clientEntry
	index     map[wire.GUID]int
	rotate    int
	lastPrune time.Time
}

// MaxClientSlots bounds a list: 2 × the largest N policy accepted.
const MaxClientSlots = 2 * MaxNPolicy

// NewClientList creates one list per application with the given initial
// sizes (the applications' client-list sizes). Unless startEmpty, each list
// is pre-filled with size/2 − 1 random CMIDs drawn from fill.
func NewClientList(sizes []int, startEmpty bool, fill func() wire.GUID) *ClientList {
	l := &ClientList{apps: make([]clientApp, len(sizes))}
	for i, n := range sizes {
		a := &l.apps[i]
		a.max = min(n, MaxClientSlots)
		a.index = make(map[wire.GUID]int)
		if !startEmpty {
			for j := 0; j < n/2-1; j++ {
				a.add(fill(), time.Time{})
			}
		}
	}
	return l
}

func (a *clientApp) add(id wire.GUID, now time.Time) {
	a.index[id] = len(a.slots)
	a.slots = append(a.slots, clientEntry{id, now})
	a.current++
}

// prune drops entries last seen before now − expiry, at most once a minute.
// Pre-filled entries (zero time) count from the first prune.
func (a *clientApp) prune(now time.Time, expiry time.Duration) {
	if expiry <= 0 || now.IsZero() || now.Sub(a.lastPrune) < time.Minute {
		return
	}
	a.lastPrune = now
	cut := now.Add(-expiry)
	for i := 0; i < len(a.slots); {
		e := &a.slots[i]
		if e.seen.IsZero() {
			e.seen = now
		}
		if !e.seen.Before(cut) {
			i++
			continue
		}
		delete(a.index, e.id)
		last := len(a.slots) - 1
		if i != last {
			a.slots[i] = a.slots[last]
			a.index[a.slots[i].id] = i
		}
		a.slots = a.slots[:last]
		a.current--
	}
}

// Count registers cmid for application app at time now and returns the
// count to send.
func (l *ClientList) Count(app int, cmid wire.GUID, required uint32, now time.Time) (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if app < 0 || app >= len(l.apps) {
		app = 0
	}
	a := &l.apps[app]
	a.prune(now, l.Expiry)
	if int(required) > a.max {
		a.max = min(int(required), MaxClientSlots)
	}
	if i, ok := a.index[cmid]; ok {
		a.slots[i].seen = now
		return a.current, nil
	}
	if len(a.slots) < a.max {
		a.add(cmid, now)
		return a.current, nil
	}
	// Full: overwrite a rotating slot; the count stays.
	i := a.rotate % len(a.slots)
	delete(a.index, a.slots[i].id)
	a.slots[i] = clientEntry{cmid, now}
	a.index[cmid] = i
	a.rotate = (a.rotate + 1) % a.max
	return a.current, nil
}

// Seed adds a client seen at a known time (from stored records) to the
// list of application app, without reporting a count. Seeds beyond the
// list's size are ignored.
func (l *ClientList) Seed(app int, cmid wire.GUID, seen time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if app < 0 || app >= len(l.apps) {
		app = 0
	}
	a := &l.apps[app]
	if i, ok := a.index[cmid]; ok {
		if seen.After(a.slots[i].seen) {
			a.slots[i].seen = seen
		}
		return
	}
	if len(a.slots) < MaxClientSlots {
		if len(a.slots) >= a.max {
			a.max = len(a.slots) + 1
		}
		a.add(cmid, seen)
	}
}
