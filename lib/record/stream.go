package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// MaxLine bounds one record. A job record carries whole node records, so a
// plan for a few thousand nodes still fits; anything larger is garbage or an
// attack, and reading it whole would only exhaust memory.
const MaxLine = 4 << 20

// DecodeError says which stage read which line and what was wrong with it.
type DecodeError struct {
	Stage string
	Line  int
	Msg   string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: stdin line %d: %s", e.Stage, e.Line, e.Msg)
}

// ErrTruncated is what a TruncatedError is (errors.Is).
var ErrTruncated = errors.New("no end record")

// TruncatedError says the input ended without an end record, after at least
// one record: the stage before did not finish, and what it wrote may be
// incomplete.
type TruncatedError struct {
	Stage string
	Line  int // the last line read
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%s: stdin ended after line %d without an end record: the stage before did not finish (killed, crashed or interrupted), so its output may be incomplete", e.Stage, e.Line)
}

// Unwrap makes errors.Is(err, ErrTruncated) true.
func (e *TruncatedError) Unwrap() error { return ErrTruncated }

// Decoder reads records one line at a time, so a stage can start on the first
// record while the stage before it is still working.
type Decoder struct {
	stage   string
	r       *bufio.Reader
	line    int
	maxLine int
	failed  error
	records int  // records returned
	ended   bool // the end record was read
}

// NewDecoder reads records for the named stage (used in error messages).
func NewDecoder(stage string, r io.Reader) *Decoder {
	return &Decoder{stage: stage, r: bufio.NewReaderSize(r, 64<<10), maxLine: MaxLine}
}

// Line is the number of the last line read (1-based).
func (d *Decoder) Line() int { return d.line }

// Ended reports whether the end record was read.
func (d *Decoder) Ended() bool { return d.ended }

// Next returns the next record, or io.EOF at the end of the stream: after
// its end record (which Next does not return, and nothing after which is
// read), or at the end of an input that held no record at all. An input
// that ends after records but without an end record is a *TruncatedError.
// After an error every further call returns the same error: a stream is not
// trusted past a bad line.
func (d *Decoder) Next() (Record, error) {
	if d.failed != nil {
		return nil, d.failed
	}
	if d.ended {
		return nil, io.EOF
	}
	for {
		line, err := d.readLine()
		if err == io.EOF && d.records > 0 {
			err = &TruncatedError{Stage: d.stage, Line: d.line}
		}
		if err != nil {
			if err != io.EOF {
				d.failed = err
			}
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := Decode(line)
		if err != nil {
			d.failed = &DecodeError{Stage: d.stage, Line: d.line, Msg: err.Error()}
			return nil, d.failed
		}
		if _, ok := rec.(*End); ok {
			d.ended = true
			return nil, io.EOF
		}
		d.records++
		return rec, nil
	}
}

func (d *Decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := d.r.ReadLine()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading stdin after line %d: %w", d.stage, d.line, err)
		}
		if len(line)+len(chunk) > d.maxLine {
			d.line++
			// Drain nothing more: the caller stops at the first error anyway.
			return nil, &DecodeError{Stage: d.stage, Line: d.line,
				Msg: fmt.Sprintf("line longer than %d bytes; is this a record stream?", d.maxLine)}
		}
		line = append(line, chunk...)
		if !isPrefix {
			d.line++
			return line, nil
		}
	}
}

// Decode parses one record line.
func Decode(line []byte) (Record, error) {
	if !utf8.Valid(line) {
		return nil, errors.New("not UTF-8 text; is this a record stream?")
	}
	// A map, not a struct: encoding/json matches struct fields ignoring
	// case, which would read "V" or "KIND" as the header, and turns null
	// into a missing field, which would hide what was actually sent.
	var head map[string]json.RawMessage
	if err := json.Unmarshal(line, &head); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("want a JSON object, got %s", typeErr.Value)
		}
		return nil, fmt.Errorf("invalid JSON: %s", jsonMsg(err))
	}
	if head == nil {
		return nil, errors.New("want a JSON object, got null")
	}
	rawV, ok := head["v"]
	if !ok {
		return nil, errors.New(`missing "v" (format version; this farm reads "v": 1)`)
	}
	var v int
	if err := json.Unmarshal(rawV, &v); err != nil || v != Version {
		return nil, fmt.Errorf(`unsupported record version "v": %s (this farm reads "v": %d)`, rawV, Version)
	}
	rawKind, ok := head["kind"]
	if !ok {
		return nil, errors.New(`missing "kind" (one of node, job, image, manifest, error, end)`)
	}
	var kind string
	if err := json.Unmarshal(rawKind, &kind); err != nil || rawKind[0] != '"' {
		return nil, fmt.Errorf(`"kind" must be a string, got %s`, rawKind)
	}
	var rec Record
	switch kind {
	case KindNode:
		rec = &Node{}
	case KindJob:
		rec = &Job{}
	case KindImage:
		rec = &Image{}
	case KindManifest:
		rec = &Manifest{}
	case KindError:
		rec = &Error{}
	case KindEnd:
		rec = &End{}
	default:
		return nil, fmt.Errorf("unknown kind %q (want one of node, job, image, manifest, error, end)", kind)
	}
	// Not json.Unmarshal(line, rec): it would scan the line again to
	// validate it, and rec's UnmarshalJSON would parse it into a map again.
	if err := rec.(fieldsDecoder).decodeFields(line, head); err != nil {
		return nil, fmt.Errorf("%s record: %s", kind, jsonMsg(err))
	}
	return rec, nil
}

// jsonMsg turns encoding/json's Go-flavoured errors into ones that name the
// record field and the JSON types involved.
func jsonMsg(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			return fmt.Sprintf("want a JSON object, got %s", typeErr.Value)
		}
		return fmt.Sprintf("field %q: want %s, got %s", field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("%v (at byte %d)", syntaxErr, syntaxErr.Offset)
	}
	return err.Error()
}

func jsonType(goKind string) string {
	switch goKind {
	case "int", "int64":
		// Not "number": "want number, got number 1.5" would explain nothing.
		return "integer"
	case "float64":
		return "number"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	}
	return goKind
}

// Encoder writes one record a line. Each record is written with a single
// Write call straight to the underlying writer (no buffering), so the next
// stage sees it at once, and concurrent writers never interleave lines.
type Encoder struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEncoder writes records to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// End writes the end record for stage, the last line of a complete stream:
// call it once everything else was written (error records too), and not
// when interrupted.
func (e *Encoder) End(stage string) error { return e.Write(&End{Stage: stage}) }

// Write encodes one record.
func (e *Encoder) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding %s record: %w", r.Kind(), err)
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.w.Write(b)
	return err
}
