package kms

import (
	"sync"

	"kmsd/internal/wire"
)

// ClientList counts distinct client machine IDs per application the way
// vlmcsd -M1 does (kms-server.md §4.3): a new CMID raises the count by one
// until the list is full; a repeated CMID leaves it unchanged.
type ClientList struct {
	mu   sync.Mutex
	apps []clientApp
}

type clientApp struct {
	max     int
	current uint32
	slots   []wire.GUID
	index   map[wire.GUID]int
	rotate  int
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
		a.max = n
		a.index = make(map[wire.GUID]int)
		if !startEmpty {
			for j := 0; j < n/2-1; j++ {
				l.add(a, fill())
			}
		}
	}
	return l
}

func (l *ClientList) add(a *clientApp, id wire.GUID) {
	a.index[id] = len(a.slots)
	a.slots = append(a.slots, id)
	a.current++
}

// Count registers cmid for application app and returns the count to send.
func (l *ClientList) Count(app int, cmid wire.GUID, required uint32) (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if app < 0 || app >= len(l.apps) {
		app = 0
	}
	a := &l.apps[app]
	if int(required) > a.max {
		a.max = min(int(required), MaxClientSlots)
	}
	if _, ok := a.index[cmid]; ok {
		return a.current, nil
	}
	if len(a.slots) < a.max {
		l.add(a, cmid)
		return a.current, nil
	}
	// Full: overwrite a rotating slot; the count stays.
	i := a.rotate % len(a.slots)
	delete(a.index, a.slots[i])
	a.slots[i] = cmid
	a.index[cmid] = i
	a.rotate = (a.rotate + 1) % a.max
	return a.current, nil
}
