// Package vectors loads the recorded vlmcs ↔ vlmcsd conversations of
// shared/testdata/vectors (see its README.md) for tests. The files are read
// in place, never copied into the repository.
//
// This is test support only: import it from _test.go files, never from
// the program (TestNoProgramImports enforces this).
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// EnvVar names the environment variable that overrides the location.
const EnvVar = "KMSD_VECTORS"

// File is one recording (one scenario).
type File struct {
	Name                    string            `json:"-"` // file name without ".json"
	Scenario                string            `json:"scenario"`
	Description             string            `json:"description"`
	Programs                string            `json:"programs"`
	ClientBuild             string            `json:"client_build"` // "current" or "older"
	ServerBuild             string            `json:"server_build"` // "current" or "older"
	RecordedUTC             string            `json:"recorded_utc"`
	ClientArgs              []string          `json:"client_args"`
	ServerArgs              []string          `json:"server_args"`
	ClientClockShiftSeconds int64             `json:"client_clock_shift_seconds"` // 0 when absent
	ServerFiles             map[string]string `json:"server_files"`
	ClientExitStatus        int               `json:"client_exit_status"`
	ClientVerbose           string            `json:"client_verbose"`
	ServerLog               string            `json:"server_log"`
	RequestFields           *Request          `json:"request_fields"`
	ResponseFields          *Response         `json:"response_fields"`
	Exchanges               []Exchange        `json:"exchanges"`
	Connections             []Connection      `json:"connections"`
	Outcome                 string            `json:"outcome"`
	ClientMessages          []string          `json:"client_messages"`
	ClientFilesBase64       map[string]string `json:"client_files_base64"`
}

// Connection is one TCP connection: its PDUs in wire order.
type Connection struct {
	PDUs []PDU `json:"pdus"`
}

// PDU is one whole DCE/RPC PDU.
type PDU struct {
	Dir  string `json:"dir"`  // "c2s" or "s2c"
	Type string `json:"type"` // bind, bind_ack, alter_context, alter_context_resp, request, response
	Hex  string `json:"hex"`
	Data []byte `json:"-"` // Hex decoded
}

// Exchange is one activation request of vlmcs and what came back.
type Exchange struct {
	Request        *Request  `json:"request"`  // nil when vlmcs ran without -v
	Response       *Response `json:"response"` // nil when there was no response
	Result         string    `json:"result"`   // "success" or vlmcs's error text
	Messages       []string  `json:"messages"`
	RPCSyntax      string    `json:"rpc_syntax"` // "NDR32" or "NDR64"
	KMSRequestHex  string    `json:"kms_request_hex"`
	KMSResponseHex string    `json:"kms_response_hex"`
	RPCReturnCode  string    `json:"rpc_return_code"` // "0x%08X"
	ProtocolMajor  int       `json:"protocol_major"`  // only without -v

	KMSRequest  []byte `json:"-"` // KMSRequestHex decoded
	KMSResponse []byte `json:"-"` // KMSResponseHex decoded; nil when absent
	ReturnCode  uint32 `json:"-"` // RPCReturnCode parsed
}

// Success reports whether vlmcs accepted the response of this exchange.
func (e *Exchange) Success() bool { return e.Result == "success" }

// Request is vlmcs's "Request Parameters" block.
type Request struct {
	PrivacyMode       string `json:"privacy_mode"`
	ProtocolVersion   string `json:"protocol_version"` // "6.0"
	VirtualMachine    bool   `json:"virtual_machine"`
	LicenseStatus     uint32 `json:"license_status"`
	LicenseStatusName string `json:"license_status_name"`
	RemainingMinutes  uint32 `json:"remaining_minutes"`
	ApplicationID     string `json:"application_id"`
	ApplicationName   string `json:"application_name"`
	SKUID             string `json:"sku_id"`
	SKUName           string `json:"sku_name"`
	KMSID             string `json:"kms_id"`
	KMSName           string `json:"kms_name"`
	CMID              string `json:"cmid"`
	PreviousCMID      string `json:"previous_cmid"`
	ClientTimeUTC     string `json:"client_time_utc"`
	ClientTimeUnix    int64  `json:"client_time_unix"`
	Workstation       string `json:"workstation"`
	NPolicy           uint32 `json:"n_policy"`
}

// Response is vlmcs's "Response from KMS server" block. Without -v only
// EPID and HWID are set (Verbose reports false).
type Response struct {
	KMSMessageSize            int    `json:"kms_message_size"`
	ProtocolVersion           string `json:"protocol_version"`
	EPID                      string `json:"epid"`
	HWID                      string `json:"hwid"` // V6 only: 16 upper-case hex digits, wire order
	CMID                      string `json:"cmid"`
	ClientTimeUTC             string `json:"client_time_utc"`
	ClientTimeUnix            int64  `json:"client_time_unix"`
	ActiveClients             uint32 `json:"active_clients"`
	RenewalIntervalMinutes    uint32 `json:"renewal_interval_minutes"`
	ActivationIntervalMinutes uint32 `json:"activation_interval_minutes"`
}

// Verbose reports whether the whole block was recorded.
func (r *Response) Verbose() bool { return r.ProtocolVersion != "" }

// Call pairs a request PDU with its response PDU and its exchange.
type Call struct {
	Conn     int // index in File.Connections
	Request  *PDU
	Response *PDU // nil if the server sent none
	Exchange *Exchange
}

// Calls returns the request/response pairs of f in order; the i-th request
// PDU of the recording is the i-th exchange.
func (f *File) Calls() ([]Call, error) {
	var out []Call
	for ci := range f.Connections {
		pdus := f.Connections[ci].PDUs
		for i := range pdus {
			if pdus[i].Type != "request" {
				continue
			}
			c := Call{Conn: ci, Request: &pdus[i]}
			for j := i + 1; j < len(pdus); j++ {
				if pdus[j].Dir == "s2c" {
					if pdus[j].Type == "response" {
						c.Response = &pdus[j]
					}
					break
				}
			}
			out = append(out, c)
		}
	}
	if len(out) != len(f.Exchanges) {
		return nil, fmt.Errorf("%s: %d request PDUs but %d exchanges", f.Name, len(out), len(f.Exchanges))
	}
	for i := range out {
		out[i].Exchange = &f.Exchanges[i]
	}
	return out, nil
}

// ServerOption returns the value of the last occurrence of the vlmcsd
// option -<letter> in ServerArgs ("-K 1" and "-K1" alike), and whether it
// was given. Options without an argument are not distinguished.
func (f *File) ServerOption(letter byte) (string, bool) {
	return option(f.ServerArgs, letter)
}

func option(args []string, letter byte) (string, bool) {
	val, found := "", false
	for i := 1; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a[1] != letter {
			continue
		}
		found = true
		if len(a) > 2 {
			val = a[2:]
		} else if i+1 < len(args) {
			val = args[i+1]
			i++
		}
	}
	return val, found
}

// Dir returns the vectors directory: $KMSD_VECTORS if set, else
// ../shared/testdata/vectors next to the module root (the first directory
// with a go.mod found walking up from the working directory), else
// shared/testdata/vectors in any parent directory. It returns "" when
// there is no such directory.
func Dir() string {
	if d := os.Getenv(EnvVar); d != "" {
		if isDir(d) {
			return d
		}
		return ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	var fallback string
	for d := wd; ; {
		if fallback == "" && isDir(filepath.Join(d, "shared", "testdata", "vectors")) {
			fallback = filepath.Join(d, "shared", "testdata", "vectors")
		}
		if isFile(filepath.Join(d, "go.mod")) {
			if c := filepath.Join(filepath.Dir(d), "shared", "testdata", "vectors"); isDir(c) {
				return c
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return fallback
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

var cache struct {
	sync.Mutex
	dir   string
	files []File
}

// TryLoad reads every recording of Dir(). It returns nil and no error when
// the directory does not exist. The result is shared between callers and
// must not be modified.
func TryLoad() ([]File, error) {
	dir := Dir()
	if dir == "" {
		return nil, nil
	}
	cache.Lock()
	defer cache.Unlock()
	if cache.files != nil && cache.dir == dir {
		return cache.files, nil
	}
	files, err := loadDir(dir)
	if err != nil {
		return nil, err
	}
	cache.dir, cache.files = dir, files
	return files, nil
}

// Load is TryLoad for tests: it skips the test when the recordings are
// absent and fails it when they cannot be read.
func Load(t testing.TB) []File {
	t.Helper()
	files, err := TryLoad()
	if err != nil {
		t.Fatalf("vectors: %v", err)
	}
	if files == nil {
		t.Skipf("recorded vectors not found (set %s or place them in ../shared/testdata/vectors next to the module)", EnvVar)
	}
	return files
}

func loadDir(dir string) ([]File, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no *.json files in %s", dir)
	}
	slices.Sort(names)
	files := make([]File, 0, len(names))
	for _, n := range names {
		f, err := loadFile(n)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func loadFile(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %v", path, err)
	}
	f.Name = strings.TrimSuffix(filepath.Base(path), ".json")
	for ci := range f.Connections {
		for pi := range f.Connections[ci].PDUs {
			p := &f.Connections[ci].PDUs[pi]
			if p.Data, err = hex.DecodeString(p.Hex); err != nil {
				return f, fmt.Errorf("%s: connection %d PDU %d: %v", path, ci, pi, err)
			}
		}
	}
	for i := range f.Exchanges {
		e := &f.Exchanges[i]
		if e.KMSRequest, err = hex.DecodeString(e.KMSRequestHex); err != nil {
			return f, fmt.Errorf("%s: exchange %d request: %v", path, i, err)
		}
		if e.KMSResponseHex != "" {
			if e.KMSResponse, err = hex.DecodeString(e.KMSResponseHex); err != nil {
				return f, fmt.Errorf("%s: exchange %d response: %v", path, i, err)
			}
		}
		rc, err := strconv.ParseUint(strings.TrimPrefix(e.RPCReturnCode, "0x"), 16, 32)
		if err != nil {
			return f, fmt.Errorf("%s: exchange %d rpc_return_code %q: %v", path, i, e.RPCReturnCode, err)
		}
		e.ReturnCode = uint32(rc)
	}
	return f, nil
}
