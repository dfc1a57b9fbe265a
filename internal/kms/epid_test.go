package kms_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/products"
)

// epidRE is the ePID format of kms-server.md §6.1.
var epidRE = regexp.MustCompile(`^(\d{5})-(\d{5})-(\d{3})-(\d{6})-03-([1-9]\d*)-([1-9]\d*)\.0000-(\d{3})(\d{4})$`)

type epidParts struct {
	platform, group, keyID, lcid, build uint32
	day, year                           int
}

func parseEPID(s string) (epidParts, error) {
	m := epidRE.FindStringSubmatch(s)
	if m == nil {
		return epidParts{}, fmt.Errorf("%q does not match %s", s, epidRE)
	}
	n := func(i int) uint32 {
		v, _ := strconv.ParseUint(m[i], 10, 32)
		return uint32(v)
	}
	return epidParts{platform: n(1), group: n(2), keyID: n(3)*1000000 + n(4), lcid: n(5), build: n(6),
		day: int(n(7)), year: int(n(8))}, nil
}

// epidWant holds the generator's inputs: CSVLK, fixed LCID and build (0 =
// random) and the current time.
type epidWant struct {
	csvlk int
	lcid  uint16
	build uint32
	now   time.Time
}

func dayOf(unix int64) time.Time {
	t := time.Unix(unix, 0).UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// checkEPID applies the rules of kms-server.md §6.3 and returns the
// violations.
func checkEPID(tab *products.Table, p epidParts, w epidWant) []string {
	var bad []string
	k := &tab.CSVLKs[w.csvlk]
	if p.group != k.GroupID {
		bad = append(bad, fmt.Sprintf("group %d, want %d", p.group, k.GroupID))
	}
	hiKey := k.MaxKeyID - 1
	if k.MaxKeyID <= k.MinKeyID {
		hiKey = k.MinKeyID
	}
	if p.keyID < k.MinKeyID || p.keyID > hiKey {
		bad = append(bad, fmt.Sprintf("key ID %d outside %d..%d", p.keyID, k.MinKeyID, hiKey))
	}
	if w.lcid != 0 && p.lcid != uint32(w.lcid) {
		bad = append(bad, fmt.Sprintf("LCID %d, want %d", p.lcid, w.lcid))
	}
	if w.lcid == 0 && !slices.Contains(kms.LCIDs[:], uint16(p.lcid)) {
		bad = append(bad, fmt.Sprintf("LCID %d not in the list", p.lcid))
	}
	builds := tab.HostBuilds
	if w.build != 0 && p.build != w.build {
		bad = append(bad, fmt.Sprintf("build %d, want %d", p.build, w.build))
	}
	if w.build == 0 && !slices.ContainsFunc(builds, func(b products.HostBuild) bool { return b.Build == p.build }) {
		bad = append(bad, fmt.Sprintf("build %d not a host build", p.build))
	}
	// Platform: first entry (descending) whose build ≤ B, else the last.
	platform := builds[len(builds)-1].PlatformID
	for _, b := range builds {
		if b.Build <= p.build {
			platform = b.PlatformID
			break
		}
	}
	if p.platform != platform {
		bad = append(bad, fmt.Sprintf("platform %d, want %d", p.platform, platform))
	}
	// Activation date between max(CSVLK, host release) and max(now, floor).
	release := builds[0].ReleaseUnix
	for i := len(builds) - 1; i >= 0; i-- {
		if builds[i].Build >= p.build {
			release = builds[i].ReleaseUnix
			break
		}
	}
	lo := max(k.ReleaseUnix, release)
	hi := max(w.now.Unix(), kms.EPIDFloor)
	if hi < lo {
		hi = lo
	}
	if p.day < 1 || p.day > 366 || p.year < 1970 {
		bad = append(bad, fmt.Sprintf("date %03d%04d", p.day, p.year))
		return bad
	}
	date := time.Date(p.year, 1, p.day, 0, 0, 0, 0, time.UTC)
	if date.Year() != p.year {
		bad = append(bad, fmt.Sprintf("day %d does not exist in %d", p.day, p.year))
	}
	if date.Before(dayOf(lo)) || date.After(dayOf(hi)) {
		bad = append(bad, fmt.Sprintf("date %s outside %s..%s", date.Format(time.DateOnly),
			dayOf(lo).Format(time.DateOnly), dayOf(hi).Format(time.DateOnly)))
	}
	return bad
}

// TestEPIDGen generates ePIDs for every CSVLK with fixed and random LCIDs
// and builds (including builds outside the table) and checks each against
// kms-server.md §6.3.
func TestEPIDGen(t *testing.T) {
	tab := products.Builtin()
	rnd := newRand(3)
	lcids := []uint16{0, 1031, 1041, 3082, 1033}
	builds := []uint32{0, 7601, 9200, 9600, 14393, 17763, 20348, 26100}
	nows := []time.Time{testNow, time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 2, 29, 12, 0, 0, 0, time.UTC)}
	n := 0
	seenLCID, seenBuild := map[uint32]bool{}, map[uint32]bool{}
	for cs := range tab.CSVLKs {
		for _, lcid := range lcids {
			for _, build := range builds {
				for _, now := range nows {
					g := &kms.EPIDGen{Table: tab, LCID: lcid, Build: build}
					for range 20 {
						b := g.PickBuild(rnd)
						l := g.PickLCID(rnd)
						if (build != 0 && b != build) || (lcid != 0 && l != lcid) {
							t.Fatalf("PickBuild/PickLCID ignored the fixed values: %d %d", b, l)
						}
						s := g.Generate(cs, b, l, now.Unix(), rnd)
						p, err := parseEPID(s)
						if err != nil {
							t.Fatal(err)
						}
						if len(s) > 63 {
							t.Errorf("%s: %d characters", s, len(s))
						}
						for _, d := range checkEPID(tab, p, epidWant{csvlk: cs, lcid: lcid, build: build, now: now}) {
							t.Errorf("CSVLK %s, LCID %d, build %d, now %s: %s: %s", tab.CSVLKs[cs].IniName, lcid, build, now.Format(time.DateOnly), s, d)
						}
						seenLCID[p.lcid], seenBuild[p.build] = true, true
						n++
					}
				}
			}
		}
	}
	// Random choices cover the candidates.
	for _, b := range tab.HostBuilds {
		if !seenBuild[b.Build] {
			t.Errorf("host build %d never chosen", b.Build)
		}
	}
	if len(seenLCID) < len(kms.LCIDs)/2 {
		t.Errorf("only %d different LCIDs chosen", len(seenLCID))
	}
	t.Logf("%d ePIDs checked", n)
}

func TestEPIDGenBuildsRestriction(t *testing.T) {
	tab := products.Builtin()
	g := &kms.EPIDGen{Table: tab, Builds: tab.HostBuilds[1:2]}
	for range 50 {
		if b := g.PickBuild(newRand(4)); b != tab.HostBuilds[1].Build {
			t.Fatalf("PickBuild = %d outside Builds", b)
		}
	}
}

func TestLCIDList(t *testing.T) {
	// kms-server.md §6.4: 158 distinct values.
	if len(kms.LCIDs) != 158 {
		t.Errorf("%d LCIDs, want 158", len(kms.LCIDs))
	}
	s := slices.Clone(kms.LCIDs[:])
	slices.Sort(s)
	if len(slices.Compact(s)) != len(kms.LCIDs) {
		t.Error("duplicate LCIDs")
	}
}

func TestBuiltinEPIDsFollowFormat(t *testing.T) {
	tab := products.Builtin()
	for i, k := range tab.CSVLKs {
		p, err := parseEPID(k.BuiltinEPID)
		if err != nil {
			t.Error(err)
			continue
		}
		if p.group != k.GroupID || p.keyID < k.MinKeyID || p.keyID >= k.MaxKeyID {
			t.Errorf("CSVLK %d %s: built-in ePID %s has group %d key %d", i, k.IniName, k.BuiltinEPID, p.group, p.keyID)
		}
	}
}
