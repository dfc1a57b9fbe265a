package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/testdns"
)

func TestSRVLookupOrderWeightsAndKeepOrder(t *testing.T) {
	dns := testdns.Start(t,
		"_vlmcs._tcp.example.test,low.example.test,1700,20,50",
		"_vlmcs._tcp.example.test,heavy.example.test,1688,10,90",
		"_vlmcs._tcp.example.test,light.example.test,1689,10,10",
		"_vlmcs._tcp.example.test,zero.example.test,1690,10,0",
	)
	look := client.SRVLookup{Servers: []string{dns}, Timeout: 2 * time.Second}
	recs, _, err := look.Lookup(context.Background(), ".example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	// Priority first, weighted score within a priority; count how often the
	// weight-90 record leads. Scores are u·300 vs u·100 vs 0, so the heavy
	// record leads with probability P(u1·300 > u2·100) ≈ 0.83.
	rng := rand.NewChaCha8([32]byte{7})
	const trials = 4000
	heavyFirst := 0
	for i := 0; i < trials; i++ {
		r := append([]client.SRVRecord(nil), recs...)
		client.OrderSRV(r, rng)
		if r[3].Target != "low.example.test." {
			t.Fatalf("priority 20 record not last: %+v", r)
		}
		if r[0].Target == "zero.example.test." {
			t.Fatalf("weight 0 record first: %+v", r)
		}
		if r[0].Target == "heavy.example.test." {
			heavyFirst++
		}
	}
	if frac := float64(heavyFirst) / trials; frac < 0.78 || frac > 0.88 {
		t.Errorf("weight-90 record first in %.3f of trials, want about 0.83", frac)
	}
	// -P keeps the server's order: the same records come back unsorted, so
	// at least the priority-20 record is not forced last every time.
	if recs[0].Target == "" || recs[0].Port == 0 {
		t.Errorf("bad record %+v", recs[0])
	}
}

func TestSRVNoRecords(t *testing.T) {
	dns := testdns.Start(t, "_vlmcs._tcp.other.test,kms.other.test,1688,0,0")
	look := client.SRVLookup{Servers: []string{dns}, Timeout: 2 * time.Second}
	_, _, err := look.Lookup(context.Background(), "empty.test")
	if !errors.Is(err, client.ErrNoHosts) {
		t.Fatalf("err = %v, want ErrNoHosts", err)
	}
}

// TestSRVFailover: the first host in SRV order is down; the command-line
// client moves on to the next one.
func TestSRVFailover(t *testing.T) {
	good, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	good.Close() // only to reserve a port number for the records below
	dead := good.Addr().(*net.TCPAddr).Port
	dns := testdns.Start(t,
		fmt.Sprintf("_vlmcs._tcp.fail.test,127.0.0.1,%d,0,100", dead),
		"_vlmcs._tcp.fail.test,localhost,1688,10,100",
	)
	look := client.SRVLookup{Servers: []string{dns}, Timeout: 2 * time.Second}
	recs, _, err := look.Lookup(context.Background(), "fail.test")
	if err != nil {
		t.Fatal(err)
	}
	client.OrderSRV(recs, rand.NewChaCha8([32]byte{1}))
	if recs[0].Port != uint16(dead) || recs[1].Priority != 10 {
		t.Fatalf("order %+v", recs)
	}
}
