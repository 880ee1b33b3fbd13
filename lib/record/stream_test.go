package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

const (
	nodeLine  = `{"v":1,"kind":"node","name":"a","cpus":2}`
	imageLine = `{"v":1,"kind":"image","platform":"linux/arm64","node":"a"}`
)

// TestDecoderErrors checks every decoder error and its exact message: the
// stage, "stdin line N", then what is wrong. Most bad lines are line 3, after
// a good line and a blank one, so the tests also check that blank lines are
// counted and that records before the bad line are delivered.
func TestDecoderErrors(t *testing.T) {
	prefix := nodeLine + "\n\n"
	tests := []struct {
		name  string
		input string
		// good is how many records come before the error.
		good int
		want string
	}{
		{"invalid JSON", prefix + `{"v":1,"kind":"node",}` + "\n", 1,
			`farm-plan: stdin line 3: invalid JSON: invalid character '}' looking for beginning of object key string (at byte 22)`},
		{"not JSON at all", prefix + "hello\n", 1,
			`farm-plan: stdin line 3: invalid JSON: invalid character 'h' looking for beginning of value (at byte 1)`},
		{"trailing garbage", prefix + nodeLine + " x\n", 1,
			`farm-plan: stdin line 3: invalid JSON: invalid character 'x' after top-level value (at byte 43)`},
		{"two objects on a line", prefix + nodeLine + nodeLine + "\n", 1,
			`farm-plan: stdin line 3: invalid JSON: invalid character '{' after top-level value (at byte 42)`},
		{"binary garbage", prefix + "\x1f\x8b\x08\x00\xff\xfe\x00\x01\n", 1,
			`farm-plan: stdin line 3: not UTF-8 text; is this a record stream?`},
		{"latin-1 text", prefix + "{\"v\":1,\"kind\":\"node\",\"name\":\"caf\xe9\"}\n", 1,
			`farm-plan: stdin line 3: not UTF-8 text; is this a record stream?`},
		{"array", prefix + "[1,2]\n", 1,
			`farm-plan: stdin line 3: want a JSON object, got array`},
		{"string", prefix + `"node"` + "\n", 1,
			`farm-plan: stdin line 3: want a JSON object, got string`},
		{"null", prefix + "null\n", 1,
			`farm-plan: stdin line 3: want a JSON object, got null`},
		{"missing v", prefix + `{"kind":"node"}` + "\n", 1,
			`farm-plan: stdin line 3: missing "v" (format version; this farm reads "v": 1)`},
		{"v 2", prefix + `{"v":2,"kind":"node"}` + "\n", 1,
			`farm-plan: stdin line 3: unsupported record version "v": 2 (this farm reads "v": 1)`},
		{"v string", prefix + `{"v":"1","kind":"node"}` + "\n", 1,
			`farm-plan: stdin line 3: unsupported record version "v": "1" (this farm reads "v": 1)`},
		{"v null", prefix + `{"v":null,"kind":"node"}` + "\n", 1,
			`farm-plan: stdin line 3: unsupported record version "v": null (this farm reads "v": 1)`},
		{"v float", prefix + `{"v":1.5,"kind":"node"}` + "\n", 1,
			`farm-plan: stdin line 3: unsupported record version "v": 1.5 (this farm reads "v": 1)`},
		{"v only in upper case", prefix + `{"V":1,"kind":"node"}` + "\n", 1,
			`farm-plan: stdin line 3: missing "v" (format version; this farm reads "v": 1)`},
		{"missing kind", prefix + `{"v":1,"name":"a"}` + "\n", 1,
			`farm-plan: stdin line 3: missing "kind" (one of node, job, image, manifest, error, end)`},
		{"kind number", prefix + `{"v":1,"kind":3}` + "\n", 1,
			`farm-plan: stdin line 3: "kind" must be a string, got 3`},
		{"kind null", prefix + `{"v":1,"kind":null}` + "\n", 1,
			`farm-plan: stdin line 3: "kind" must be a string, got null`},
		{"kind object", prefix + `{"v":1,"kind":{"is":"node"}}` + "\n", 1,
			`farm-plan: stdin line 3: "kind" must be a string, got {"is":"node"}`},
		{"unknown kind", prefix + `{"v":1,"kind":"nod"}` + "\n", 1,
			`farm-plan: stdin line 3: unknown kind "nod" (want one of node, job, image, manifest, error, end)`},
		{"kind in upper case", prefix + `{"v":1,"kind":"NODE"}` + "\n", 1,
			`farm-plan: stdin line 3: unknown kind "NODE" (want one of node, job, image, manifest, error, end)`},
		{"wrong field type", prefix + `{"v":1,"kind":"node","cpus":"four"}` + "\n", 1,
			`farm-plan: stdin line 3: node record: field "cpus": want integer, got string`},
		{"fraction for an integer", prefix + `{"v":1,"kind":"node","cpus":1.5}` + "\n", 1,
			`farm-plan: stdin line 3: node record: field "cpus": want integer, got number 1.5`},
		{"number for a string", prefix + `{"v":1,"kind":"image","digest":42}` + "\n", 1,
			`farm-plan: stdin line 3: image record: field "digest": want string, got number`},
		{"string for a bool", prefix + `{"v":1,"kind":"job","emulated":"yes"}` + "\n", 1,
			`farm-plan: stdin line 3: job record: field "emulated": want boolean, got string`},
		{"string for a float", prefix + `{"v":1,"kind":"image","build_seconds":"1s"}` + "\n", 1,
			`farm-plan: stdin line 3: image record: field "build_seconds": want number, got string`},
		{"string for a list", prefix + `{"v":1,"kind":"node","native":"linux/arm64"}` + "\n", 1,
			`farm-plan: stdin line 3: node record: field "native": want array, got string`},
		{"wrong type in a job's node", prefix + `{"v":1,"kind":"job","node":{"cpus":"four"}}` + "\n", 1,
			`farm-plan: stdin line 3: job record: field "node.cpus": want integer, got string`},
		{"string for a job's node", prefix + `{"v":1,"kind":"job","node":"arm1"}` + "\n", 1,
			`farm-plan: stdin line 3: job record: field "node": want object, got string`},
		{"wrong type in an alternative", prefix + `{"v":1,"kind":"job","alternatives":[{"memory":"1G"}]}` + "\n", 1,
			`farm-plan: stdin line 3: job record: field "alternatives.memory": want integer, got string`},
		{"wrong type in an instance", prefix + `{"v":1,"kind":"manifest","instances":[{"digest":1}]}` + "\n", 1,
			`farm-plan: stdin line 3: manifest record: field "instances.digest": want string, got number`},
		{"string for the error line", prefix + `{"v":1,"kind":"error","line":"three"}` + "\n", 1,
			`farm-plan: stdin line 3: error record: field "line": want integer, got string`},
		{"truncated last line", prefix + `{"v":1,"kind":"no`, 1,
			`farm-plan: stdin line 3: invalid JSON: unexpected end of JSON input (at byte 17)`},
		{"first line bad", "{\n", 0,
			`farm-plan: stdin line 1: invalid JSON: unexpected end of JSON input (at byte 1)`},
		{"after many blank lines", "\n\n \n\t\n\r\n" + `{"v":1}` + "\n", 0,
			`farm-plan: stdin line 6: missing "kind" (one of node, job, image, manifest, error, end)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder("farm-plan", strings.NewReader(tt.input))
			for i := 0; i < tt.good; i++ {
				if _, err := d.Next(); err != nil {
					t.Fatalf("record %d: %v", i+1, err)
				}
			}
			r, err := d.Next()
			if err == nil {
				t.Fatalf("Next = %#v, want error %s", r, tt.want)
			}
			if r != nil {
				t.Errorf("Next returned %#v with the error", r)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is %T, want *DecodeError", err)
			}
			if de.Stage != "farm-plan" || de.Line != d.Line() {
				t.Errorf("DecodeError{Stage: %q, Line: %d}, decoder at line %d", de.Stage, de.Line, d.Line())
			}
			// A stream is not trusted past a bad line: every later call
			// returns the same error, even though good lines may follow.
			for i := 0; i < 3; i++ {
				if _, again := d.Next(); again != err {
					t.Fatalf("call %d after the error returned %v, want the same error", i+1, again)
				}
			}
		})
	}
}

// TestDecodeErrorShape pins the message format other tools may parse.
func TestDecodeErrorShape(t *testing.T) {
	e := &DecodeError{Stage: "farm-build", Line: 12, Msg: "boom"}
	if got, want := e.Error(), "farm-build: stdin line 12: boom"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDecoderLongLine(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"just over MaxLine", MaxLine + 1},
		{"10 MB", 10 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A record whose unknown field makes the line the given size.
			head := `{"v":1,"kind":"node","pad":"`
			long := head + strings.Repeat("x", tt.size-len(head)-2) + `"}`
			input := nodeLine + "\n" + long + "\n" + nodeLine + "\n"
			d := NewDecoder("farm-build", strings.NewReader(input))
			if _, err := d.Next(); err != nil {
				t.Fatal(err)
			}
			_, err := d.Next()
			want := fmt.Sprintf("farm-build: stdin line 2: line longer than %d bytes; is this a record stream?", MaxLine)
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %s", err, want)
			}
			if _, again := d.Next(); again != err {
				t.Errorf("after the long line Next returned %v", again)
			}
		})
	}
}

func TestDecoderMaxLineFits(t *testing.T) {
	// A line of exactly MaxLine bytes is a record, not an attack.
	head := `{"v":1,"kind":"node","pad":"`
	line := head + strings.Repeat("x", MaxLine-len(head)-2) + `"}`
	if len(line) != MaxLine {
		t.Fatalf("test line is %d bytes", len(line))
	}
	d := NewDecoder("farm-plan", strings.NewReader(line+"\n"+nodeLine+"\n"+endLine+"\n"))
	for i := 0; i < 2; i++ {
		if _, err := d.Next(); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("end: %v, want io.EOF", err)
	}
}

const endLine = `{"v":1,"kind":"end","stage":"farm-nodes"}`

// A stream with records but no end record is truncated: the stage before
// died. The error says so, stays, and is not io.EOF.
func TestDecoderTruncated(t *testing.T) {
	for _, input := range []string{nodeLine + "\n", nodeLine + "\n" + imageLine, nodeLine + "\n\n  \n"} {
		d := NewDecoder("farm-manifest", strings.NewReader(input))
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		var err error
		for err == nil {
			_, err = d.Next()
		}
		var te *TruncatedError
		if !errors.As(err, &te) || !errors.Is(err, ErrTruncated) || te.Line != d.Line() {
			t.Fatalf("%q: %v, want a TruncatedError at line %d", input, err, d.Line())
		}
		if !strings.HasPrefix(err.Error(), "farm-manifest: stdin ended after line ") || !strings.Contains(err.Error(), "without an end record") {
			t.Errorf("message %q", err)
		}
		if _, again := d.Next(); again != err {
			t.Errorf("after the truncation Next returned %v", again)
		}
		if d.Ended() {
			t.Error("Ended() on a truncated stream")
		}
	}
}

func TestDecoderStream(t *testing.T) {
	tests := []struct {
		name  string
		input string
		kinds []string
		lines int
	}{
		{"empty input", "", nil, 0},
		{"only blank lines", "\n\n  \n", nil, 3},
		{"last line without newline", nodeLine + "\n" + imageLine + "\n" + endLine, []string{"node", "image"}, 3},
		{"blank lines skipped", "\n" + nodeLine + "\n\n\n" + imageLine + "\n\n" + endLine + "\n\n", []string{"node", "image"}, 7},
		{"CRLF line ends", nodeLine + "\r\n" + imageLine + "\r\n" + endLine + "\r\n", []string{"node", "image"}, 3},
		{"spaces around a record", "  " + nodeLine + "\t\n " + endLine + "\n", []string{"node"}, 2},
		{"only the end record", endLine + "\n", nil, 1},
		{"nothing after the end record is read", nodeLine + "\n" + endLine + "\n" + "garbage\n", []string{"node"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// OneByteReader makes every line arrive in pieces, as from a
			// slow pipe.
			for _, r := range []io.Reader{strings.NewReader(tt.input), iotest.OneByteReader(strings.NewReader(tt.input))} {
				d := NewDecoder("farm-plan", r)
				var kinds []string
				for {
					rec, err := d.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("after %v: %v", kinds, err)
					}
					kinds = append(kinds, rec.Kind())
				}
				if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
					t.Errorf("kinds %v, want %v", kinds, tt.kinds)
				}
				if d.Line() != tt.lines {
					t.Errorf("Line() = %d, want %d", d.Line(), tt.lines)
				}
				// io.EOF is not an error: it stays io.EOF.
				if _, err := d.Next(); err != io.EOF {
					t.Errorf("after EOF: %v", err)
				}
			}
		})
	}
}

func TestDecoderEmptyInput(t *testing.T) {
	d := NewDecoder("farm-manifest", strings.NewReader(""))
	if r, err := d.Next(); r != nil || err != io.EOF {
		t.Errorf("Next() = %v, %v; want nil, io.EOF", r, err)
	}
	if d.Line() != 0 {
		t.Errorf("Line() = %d", d.Line())
	}
}

func TestDecoderReadError(t *testing.T) {
	boom := errors.New("boom")
	d := NewDecoder("farm-build", io.MultiReader(strings.NewReader(nodeLine+"\n"), iotest.ErrReader(boom)))
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := d.Next()
	if !errors.Is(err, boom) || err.Error() != "farm-build: reading stdin after line 1: boom" {
		t.Fatalf("error %v", err)
	}
	if _, again := d.Next(); again != err {
		t.Errorf("after a read error Next returned %v", again)
	}
}

// lineRecorder records every Write call, and fails the test if two calls
// overlap or a call is not exactly one line.
type lineRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	writes  [][]byte
	inWrite atomic.Int32
}

func (w *lineRecorder) Write(p []byte) (int, error) {
	if w.inWrite.Add(1) != 1 {
		w.t.Error("two Write calls at once")
	}
	defer w.inWrite.Add(-1)
	// Widen the window in which an unlocked encoder would overlap.
	for i := 0; i < 10; i++ {
		runtime.Gosched()
	}
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(p))
	w.mu.Unlock()
	return len(p), nil
}

func TestEncoderConcurrent(t *testing.T) {
	w := &lineRecorder{t: t}
	enc := NewEncoder(w)
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var r Record = &Image{Platform: "linux/arm64", Node: fmt.Sprintf("n%d", g), Size: int64(i)}
				if i%2 == 1 {
					// A big record, larger than a pipe's atomic write.
					r = &Job{Platform: "linux/amd64", Node: Node{Name: fmt.Sprintf("n%d", g)},
						Alternatives: make([]Node, 40)}
				}
				if err := enc.Write(r); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if len(w.writes) != writers*each {
		t.Fatalf("%d Write calls, want one per record: %d", len(w.writes), writers*each)
	}
	perNode := map[string]int{}
	for _, b := range w.writes {
		if bytes.Count(b, []byte("\n")) != 1 || b[len(b)-1] != '\n' {
			t.Fatalf("Write call is not one whole line: %.80q", b)
		}
		r, err := Decode(b[:len(b)-1])
		if err != nil {
			t.Fatalf("written line does not decode: %v", err)
		}
		switch r := r.(type) {
		case *Image:
			perNode[r.Node]++
		case *Job:
			perNode[r.Node.Name]++
		}
	}
	for g := 0; g < writers; g++ {
		if n := perNode[fmt.Sprintf("n%d", g)]; n != each {
			t.Errorf("writer %d: %d records, want %d", g, n, each)
		}
	}
}

func TestEncoderErrors(t *testing.T) {
	// A record that cannot be encoded writes nothing: half a line would
	// break the next stage.
	var buf bytes.Buffer
	err := NewEncoder(&buf).Write(&Node{Name: "a", Extra: Extra{"bad": []byte("{")}})
	if err == nil || !strings.HasPrefix(err.Error(), "encoding node record: ") {
		t.Errorf("error %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
	// A failing writer's error is returned.
	boom := errors.New("broken pipe")
	if err := NewEncoder(errWriter{boom}).Write(&Node{}); !errors.Is(err, boom) {
		t.Errorf("error %v, want %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// nodeStream is n node records as farm-nodes writes them.
func nodeStream(b testing.TB, n int) []byte {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	node := fullNode()
	for i := 0; i < n; i++ {
		node.Name = fmt.Sprintf("node%d", i)
		if err := enc.Write(&node); err != nil {
			b.Fatal(err)
		}
	}
	return buf.Bytes()
}

// BenchmarkDecodeNode decodes 10,000 node records per iteration, a farm far
// larger than any real one.
func BenchmarkDecodeNode(b *testing.B) {
	const n = 10000
	input := nodeStream(b, n)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		d := NewDecoder("farm-plan", bytes.NewReader(input))
		count := 0
		for {
			_, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			count++
		}
		if count != n {
			b.Fatalf("decoded %d records", count)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkEncodeNode is the other half of every stage's loop.
func BenchmarkEncodeNode(b *testing.B) {
	node := fullNode()
	enc := NewEncoder(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.Write(&node); err != nil {
			b.Fatal(err)
		}
	}
}
