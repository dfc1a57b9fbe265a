package kms

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"kmsd/internal/products"
)

// LCIDs used for random ePIDs (kms-server.md §6.4).
var LCIDs = [...]uint16{
	1025, 1026, 1027, 1028, 1029, 1030, 1031, 1032, 1033, 1034, 1035, 1036, 1037, 1038, 1039, 1040,
	1041, 1042, 1043, 1044, 1045, 1046, 1048, 1049, 1050, 1051, 1052, 1053, 1054, 1056, 1057, 1058,
	1059, 1060, 1061, 1062, 1063, 1065, 1066, 1067, 1068, 1069, 1071, 1074, 1076, 1077, 1078, 1079,
	1080, 1081, 1082, 1083, 1086, 1087, 1088, 1089, 1091, 1092, 1093, 1094, 1095, 1097, 1098, 1099,
	1100, 1102, 1103, 1104, 1106, 1110, 1111, 1114, 1125, 1131, 1153, 2049, 2052, 2055, 2057, 2058,
	2060, 2064, 2067, 2068, 2070, 2074, 2077, 2092, 2107, 2110, 2115, 2155, 3073, 3076, 3079, 3081,
	3082, 3084, 3098, 3131, 3179, 4097, 4100, 4103, 4105, 4106, 4108, 4122, 4155, 5121, 5124, 5127,
	5129, 5130, 5132, 5146, 5179, 6145, 6153, 6154, 6156, 6170, 6203, 7169, 7177, 7178, 7194, 7227,
	8193, 8201, 8202, 8251, 9217, 9225, 9226, 9275, 10241, 10249, 10250, 11265, 11273, 11274, 12289, 12297,
	12298, 13313, 13321, 13322, 14337, 14346, 15361, 15370, 16385, 16394, 17418, 18442, 19466, 20490,
}

// EPIDFloor is the earliest "now" used for activation dates, so a host
// whose clock is far behind still makes plausible dates (kms-server.md §6.3).
var EPIDFloor = time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC).Unix()

// EPIDGen makes ePIDs as vlmcsd does (kms-server.md §6.3).
type EPIDGen struct {
	Table *products.Table
	// Builds are the candidate host builds for a random choice (largest
	// first); empty means every host build of Table.
	Builds []products.HostBuild
	LCID   uint16 // fixed LCID (vlmcsd -C); 0 = random
	Build  uint32 // fixed host build (vlmcsd -H); 0 = random
}

func rand32(r io.Reader) uint32 {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		panic(fmt.Sprintf("kms: random source failed: %v", err))
	}
	return binary.LittleEndian.Uint32(b[:])
}

// PickBuild returns the fixed build or a random candidate.
func (g *EPIDGen) PickBuild(rnd io.Reader) uint32 {
	if g.Build != 0 {
		return g.Build
	}
	c := g.Builds
	if len(c) == 0 {
		c = g.Table.HostBuilds
	}
	return c[rand32(rnd)%uint32(len(c))].Build
}

// PickLCID returns the fixed LCID or a random one of LCIDs.
func (g *EPIDGen) PickLCID(rnd io.Reader) uint16 {
	if g.LCID != 0 {
		return g.LCID
	}
	return LCIDs[rand32(rnd)%uint32(len(LCIDs))]
}

// platformAndRelease returns the platform ID of build b (first entry, in
// descending order, whose build ≤ b; else the last entry) and the host
// release date (the entry with the smallest build ≥ b; else the first).
func platformAndRelease(builds []products.HostBuild, b uint32) (platform uint32, release int64) {
	platform = builds[len(builds)-1].PlatformID
	for _, e := range builds {
		if e.Build <= b {
			platform = e.PlatformID
			break
		}
	}
	release = builds[0].ReleaseUnix
	for i := len(builds) - 1; i >= 0; i-- {
		if builds[i].Build >= b {
			release = builds[i].ReleaseUnix
			break
		}
	}
	return platform, release
}

// Generate makes an ePID for CSVLK slot csvlk with host build b and lcid,
// activated at a random date between the later of the CSVLK's and the
// build's release dates and now.
func (g *EPIDGen) Generate(csvlk int, b uint32, lcid uint16, now int64, rnd io.Reader) string {
	k := &g.Table.CSVLKs[csvlk]
	platform, hostRelease := platformAndRelease(g.Table.HostBuilds, b)
	keyID := k.MinKeyID
	if k.MaxKeyID > k.MinKeyID {
		keyID += rand32(rnd) % (k.MaxKeyID - k.MinKeyID)
	}
	lo := max(k.ReleaseUnix, hostRelease)
	hi := max(now, EPIDFloor)
	t := lo
	if hi > lo {
		t = lo + int64(uint64(rand32(rnd))%uint64(hi-lo))
	}
	d := time.Unix(t, 0).UTC()
	return fmt.Sprintf("%05d-%05d-%03d-%06d-03-%d-%d.0000-%03d%04d",
		platform, k.GroupID, keyID/1000000, keyID%1000000, lcid, b, d.YearDay(), d.Year())
}
