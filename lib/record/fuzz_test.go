package record

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// fuzzSeeds are lines that reach every branch of Decode: the golden records
// (added separately) and one line per decoder error.
var fuzzSeeds = []string{
	``,
	`{}`,
	`null`,
	`[1,2]`,
	`"node"`,
	`{"v":1,"kind":"node",}`,
	`{"v":1,"kind":"no`,
	"\x1f\x8b\x08\x00\xff\xfe",
	"{\"v\":1,\"kind\":\"node\",\"name\":\"caf\xe9\"}",
	`{"kind":"node"}`,
	`{"v":2,"kind":"node"}`,
	`{"v":"1","kind":"node"}`,
	`{"v":null,"kind":"node"}`,
	`{"v":1.0,"kind":"node"}`,
	`{"v":1}`,
	`{"v":1,"kind":3}`,
	`{"v":1,"kind":null}`,
	`{"v":1,"kind":"nod"}`,
	`{"v":1,"kind":"node","cpus":"four"}`,
	`{"v":1,"kind":"node","cpus":1e400}`,
	`{"v":1,"kind":"image","build_seconds":1e400}`,
	`{"v":1,"kind":"job","node":"arm1"}`,
	`{"v":1,"kind":"job","node":null,"alternatives":[null,{}]}`,
	`{"v":1,"kind":"job","node":{"v":2,"kind":"image","x":1}}`,
	`{"v":1,"kind":"manifest","instances":[{"digest":1}]}`,
	`{"v":1,"kind":"node","name":"a","NAME":"b","V":2,"KIND":"job"}`,
	`{"v":1,"kind":"image","ſize":5,"size":7}`,
	`{"v":1,"kind":"node","x":"<&>\u2028","y": [1, 2.50, 1e3, 12345678901234567890]}`,
	`{"v":1,"kind":"node","name":"\ud800","x":"\udfff"}`,
	`{"v":1,"v":2,"kind":"node","kind":"job"}`,
	`{"v":1,"kind":"error","stage":"s","error":"e","line":-1}`,
}

// FuzzDecode checks that no input makes Decode (or the Decoder) panic, and
// that whatever Decode accepts survives a stage: encoding it and decoding
// the result gives the same record, and encoding is then a fixed point.
func FuzzDecode(f *testing.F) {
	for _, l := range goldenLines(f) {
		f.Add(l)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fuzzDecoder(t, line)

		r1, err := Decode(line)
		if err != nil {
			if r1 != nil {
				t.Fatalf("Decode returned %#v with error %v", r1, err)
			}
			return
		}
		b1, err := json.Marshal(r1)
		if err != nil {
			t.Fatalf("decoded %q as %#v, which does not encode: %v", line, r1, err)
		}
		r2, err := Decode(b1)
		if err != nil {
			t.Fatalf("decoded %q, encoded it as %s, which does not decode: %v", line, b1, err)
		}
		if !sameRecord(t, r1, r2) {
			t.Fatalf("round trip changed the record\ninput: %q\nfirst:  %#v\nsecond: %#v", line, r1, r2)
		}
		b2, err := json.Marshal(r2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding is not a fixed point\ninput: %q\nfirst:  %s\nsecond: %s", line, b1, b2)
		}

		// Unknown fields never change known ones: a record of zero known
		// fields plus these unknown ones reads back exactly so.
		for _, z := range zeroWithExtras(r1) {
			b, err := json.Marshal(z)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(b)
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if !sameRecord(t, back, z) {
				t.Fatalf("unknown fields changed known ones\nline: %s\n got: %#v\nwant: %#v", b, back, z)
			}
		}
	})
}

// fuzzDecoder runs the bytes through a Decoder, as a stream of lines: it
// must end in io.EOF or an error that then sticks, without panicking.
func fuzzDecoder(t *testing.T, data []byte) {
	d := NewDecoder("fuzz", bytes.NewReader(data))
	for i := 0; ; i++ {
		if i > len(data)+1 {
			t.Fatalf("more records than lines in %q", data)
		}
		r, err := d.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			if r != nil {
				t.Fatalf("Next returned a record with error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error %q does not name the stage", err)
			}
			if _, again := d.Next(); again != err {
				t.Fatalf("after %v Next returned %v", err, again)
			}
			return
		}
	}
}

// zeroWithExtras returns, for r and each node a job carries, a record of
// the same kind with every known field zero and the same unknown fields.
func zeroWithExtras(r Record) []Record {
	var out []Record
	add := func(z Record, e Extra) {
		if len(e) > 0 {
			reflect.ValueOf(z).Elem().FieldByName("Extra").Set(reflect.ValueOf(e))
			out = append(out, z)
		}
	}
	switch r := r.(type) {
	case *Node:
		add(&Node{}, r.Extra)
	case *Job:
		add(&Job{}, r.Extra)
		add(&Node{}, r.Node.Extra)
		for _, a := range r.Alternatives {
			add(&Node{}, a.Extra)
		}
	case *Image:
		add(&Image{}, r.Extra)
	case *Manifest:
		add(&Manifest{}, r.Extra)
	case *Error:
		add(&Error{}, r.Extra)
	}
	return out
}
