package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// The subscribers file, the --state snapshot, the admin API's list and its
// subscriber objects share one JSON shape, so that what `scpsim subscriber
// list --output json` prints can seed another simulator:
//
//	[{"imsi": "001010000000001", "addr": "127.0.0.1:5062", "state": "online"},
//	 {"mac": "00:1a:2b:3c:4d:5e", "state": "absent"},
//	 {"msisdn": "+441632960001", "addr": "127.0.0.1:5068"}]
//
// Exactly one of "imsi", "mac" and "msisdn" names the subscriber. "state"
// defaults to online; "addr" is required when the state is online.
type entry struct {
	IMSI   string `json:"imsi,omitempty"`
	MAC    string `json:"mac,omitempty"`
	MSISDN string `json:"msisdn,omitempty"`
	Addr   string `json:"addr,omitempty"`
	State  string `json:"state,omitempty"`
}

// maxFileBytes bounds a subscribers file: a lab simulator holds thousands of
// subscribers, not millions, and a runaway file should fail clearly.
const maxFileBytes = 64 << 20

func toEntry(s Subscriber) entry {
	e := entry{Addr: addrString(s.Addr), State: string(s.State)}
	typ, val, _ := strings.Cut(s.ID, ":")
	switch registry.MobileIDType(typ) {
	case registry.MAC:
		e.MAC = val
	case registry.MSISDN:
		e.MSISDN = val
	default:
		e.IMSI = val
	}
	return e
}

// subscriber validates e. Errors name the field in the JSON.
func (e entry) subscriber() (Subscriber, error) {
	var id registry.MobileID
	var err error
	named := 0
	for _, v := range []string{e.IMSI, e.MAC, e.MSISDN} {
		if v != "" {
			named++
		}
	}
	switch {
	case named > 1:
		return Subscriber{}, &registry.ValidationError{Field: "imsi", Rule: "give one of imsi, mac or msisdn, not several"}
	case e.IMSI != "":
		id, err = registry.ParseIMSI(e.IMSI)
	case e.MAC != "":
		id, err = registry.ParseMAC(e.MAC)
	case e.MSISDN != "":
		id, err = registry.ParseMSISDN(e.MSISDN)
	default:
		return Subscriber{}, &registry.ValidationError{Field: "imsi", Rule: "an imsi, a mac or an msisdn is required"}
	}
	if err != nil {
		return Subscriber{}, err
	}
	state := scp.Online
	if e.State != "" {
		if state, err = parseState(e.State); err != nil {
			return Subscriber{}, err
		}
	}
	sub := Subscriber{ID: id.String(), State: state}
	if e.Addr != "" {
		if sub.Addr, err = ParseAddr(e.Addr); err != nil {
			return Subscriber{}, err
		}
	}
	return sub.normalise()
}

// DecodeSubscribers reads a subscribers file strictly: unknown fields,
// trailing data, a wrong type, a bad identity, address or state, and a
// duplicate identity are all errors that give the index of the bad entry.
func DecodeSubscribers(r io.Reader) ([]Subscriber, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("subscribers: larger than %d bytes", maxFileBytes)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '[' {
		return nil, errors.New("subscribers: must be a JSON array of objects such as [{\"imsi\": \"001010000000001\", \"addr\": \"127.0.0.1:5062\", \"state\": \"online\"}]")
	}
	// Decoding into raw messages first separates syntax errors (reported
	// by position) from errors in one entry (reported by index).
	var raws []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raws); err != nil {
		return nil, fmt.Errorf("subscribers: %s", jsonErr(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("subscribers: unexpected data after the array")
	}
	out := make([]Subscriber, 0, len(raws))
	seen := make(map[string]int, len(raws))
	for i, raw := range raws {
		var e entry
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("subscribers[%d]: %s", i, jsonErr(raw, err))
		}
		sub, err := e.subscriber()
		if err != nil {
			return nil, fmt.Errorf("subscribers[%d]: %w", i, err)
		}
		if j, dup := seen[sub.ID]; dup {
			return nil, fmt.Errorf("subscribers[%d]: %w", i, &registry.ValidationError{Field: string(sub.ID[:strings.IndexByte(sub.ID, ':')]), Rule: fmt.Sprintf("%s is already given by subscribers[%d]", sub.ID, j)})
		}
		seen[sub.ID] = i
		out = append(out, sub)
	}
	return out, nil
}

// jsonErr turns a decoding error into words that point at the problem.
func jsonErr(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn) && data == nil:
		return fmt.Sprintf("invalid JSON: %v", syn)
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Sprintf("invalid JSON at line %d column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("%s: must be a JSON %s, not %s", typ.Field, typ.Type.Kind(), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "truncated JSON"
	}
	return err.Error()
}

func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// EncodeSubscribers writes subs in the subscribers-file format, one entry a
// line so that the file diffs well.
func EncodeSubscribers(w io.Writer, subs []Subscriber) error {
	var b bytes.Buffer
	b.WriteString("[")
	for i, s := range subs {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  ")
		line, err := json.Marshal(toEntry(s))
		if err != nil {
			return err
		}
		b.Write(line)
	}
	if len(subs) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := w.Write(b.Bytes())
	return err
}

// LoadFile reads a subscribers file; errors name the file.
func LoadFile(path string) ([]Subscriber, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	subs, err := DecodeSubscribers(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return subs, nil
}

// SaveFile writes subs to path atomically: a temporary file in the same
// directory is written, synced and renamed over path, and the directory is
// synced, so a crash leaves either the old or the new file, never half of
// one.
func SaveFile(path string, subs []Subscriber) (err error) {
	var b bytes.Buffer
	if err := EncodeSubscribers(&b, subs); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b.Bytes()); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Syncing the directory makes the rename itself durable.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
