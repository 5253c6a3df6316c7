package tracking

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/miniray/miniray/pkg/events"
)

// The spool keeps the events that JetStream has not acknowledged while NATS cannot be
// reached, or cannot keep up with the job, so that a job that runs, or even ends,
// without NATS loses nothing. Each client appends to a file of its own, which it
// holds under an exclusive lock while it lives, and sends it from the front while
// it appends at the end. A file whose lock is free belongs to a process that is
// gone: any client or the collector may send it and then remove it.
//
// A record is one line: the CRC-32 of the event's JSON in 8 hex digits, a space, the
// JSON. A crash in the middle of a write leaves at most one torn last line, which the
// checksum rejects without spoiling the lines before it.

const spoolExt = ".spool"

// SpoolDir returns the spool directory: MINIRAY_SPOOL_DIR, or miniray/spool in the
// user's cache directory.
func SpoolDir() string {
	if d := os.Getenv("MINIRAY_SPOOL_DIR"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "miniray", "spool")
}

// spoolFile is one client's own spool file. The client's smu guards its fields.
type spoolFile struct {
	path string
	f    *os.File
	// size is where the next write goes: the end of the last whole record.
	size int64
	// torn is set when a failed write left part of a record that could not be cut
	// off: the next write starts on a new line, so that only that record is lost.
	torn bool
	// extents are the writes whose events are not all acknowledged, oldest first;
	// the sender has read the first nread of them. Once all are acknowledged the
	// file is emptied. The sender reads the file by extents, so a torn record
	// between two is never read back by this client.
	extents []extent
	nread   int
	buf     []byte // reused for every write
}

// extent is one write to the spool: n records from start to end.
type extent struct {
	start, end int64
	n          int
	// copies marks records of events that the sender's window holds too: they were
	// written because NATS went away before they were acknowledged, in case the job
	// ends first, and the window sends them, so the sender does not read them back.
	copies bool
}

// createSpool creates and locks a new spool file in dir. Names start with the time
// in nanoseconds so that sorting them sends the oldest first.
func createSpool(dir string) (*spoolFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	name := fmt.Sprintf("%019d-%d-%s%s", time.Now().UnixNano(), os.Getpid(), nuid.Next(), spoolExt)
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock spool file: %w", err)
	}
	return &spoolFile{path: path, f: f}, nil
}

// append writes records as one write, the JSON of each as it was encoded. Once
// written, they survive the job's process; [spoolFile.sync] makes them survive the
// machine, as far as the disk allows. A failed write is cut off again, so that the
// file holds whole records only.
func (s *spoolFile) append(recs []record, copies bool) error {
	buf := s.buf[:0]
	if s.torn {
		st, err := s.f.Stat()
		if err != nil {
			return fmt.Errorf("stat spool: %w", err)
		}
		s.size = st.Size()
		buf = append(buf, '\n')
	}
	start := s.size + int64(len(buf))
	for i := range recs {
		buf = appendSpoolRecord(buf, recs[i].data)
	}
	if cap(buf) <= 4<<20 {
		s.buf = buf // a copy of a large window is not worth keeping
	}
	if _, err := s.f.Write(buf); err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.torn = true
		}
		return fmt.Errorf("write spool: %w", err)
	}
	s.size += int64(len(buf))
	s.torn = false
	s.extents = append(s.extents, extent{start: start, end: s.size, n: len(recs), copies: copies})
	return nil
}

// appendSpoolRecord appends the record of an event's JSON: its CRC-32 in 8 hex
// digits, a space, the JSON and a newline.
func appendSpoolRecord(b, body []byte) []byte {
	sum := crc32.ChecksumIEEE(body)
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[sum>>shift&0xf])
	}
	b = append(b, ' ')
	b = append(b, body...)
	return append(b, '\n')
}

// sync flushes what was written to the disk.
func (s *spoolFile) sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	return nil
}

// nextExtent returns the first extent the sender has not read, if any.
func (s *spoolFile) nextExtent() (extent, bool) {
	if s.nread >= len(s.extents) {
		return extent{}, false
	}
	s.nread++
	return s.extents[s.nread-1], true
}

// readExtent reads the records of e. It needs no lock: an extent does not change
// once written, and the file is emptied only when every extent was acknowledged.
func (s *spoolFile) readExtent(e extent) ([]byte, error) {
	b := make([]byte, e.end-e.start)
	if _, err := s.f.ReadAt(b, e.start); err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	return b, nil
}

// done records that every event of the oldest extent was acknowledged. Once all
// were, it empties the file and reports so.
func (s *spoolFile) done() (bool, error) {
	s.extents[0] = extent{}
	s.extents = s.extents[1:]
	s.nread--
	if len(s.extents) > 0 {
		return false, nil
	}
	s.extents, s.nread = nil, 0
	if err := s.f.Truncate(0); err != nil {
		return false, fmt.Errorf("truncate spool: %w", err)
	}
	s.size, s.torn = 0, false
	return true, nil
}

// spoolBatch is what was read of a spool: the messages that publish its intact
// records.
type spoolBatch struct {
	msgs   []*nats.Msg
	intact int // records read whole: the messages and the events too large to send
	bad    int // damaged records, skipped
}

// readRecords reads every record from r. An event that cannot fit the server's max
// payload even cut down is logged and left out: it would never be accepted, and
// would hold back all the others.
func readRecords(r *bufio.Reader, maxPayload int64, log *slog.Logger) (spoolBatch, error) {
	var b spoolBatch
	for {
		line, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			return b, fmt.Errorf("read spool: %w", err)
		}
		switch body, ok, skip := parseRecord(line); {
		case skip:
		case !ok:
			b.bad++
		default:
			m, err := recordMsg(body, maxPayload)
			switch {
			case errors.Is(err, errDamaged):
				b.bad++
			case err != nil:
				b.intact++
				log.Error("spooled event cannot be sent", "error", err)
			default:
				b.intact++
				b.msgs = append(b.msgs, m)
			}
		}
		if err != nil {
			return b, nil
		}
	}
}

// readLine returns the next line with its newline, however long.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = r.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// readAll reads every record in the file.
func (s *spoolFile) readAll(maxPayload int64, log *slog.Logger) (spoolBatch, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return spoolBatch{}, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	return readRecords(bufio.NewReader(f), maxPayload, log)
}

// close releases the file, removing it when it holds nothing.
func (s *spoolFile) close(keep bool) error {
	if !keep {
		os.Remove(s.path)
	}
	return s.f.Close()
}

// parseRecord checks one record, with or without its newline, and returns the
// event's JSON. It reports ok for an intact record, and skip for an empty line,
// which is no record at all.
func parseRecord(line []byte) (body []byte, ok, skip bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) == 0 {
		return nil, false, true
	}
	sum, body, found := bytes.Cut(line, []byte(" "))
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if !found || err != nil || len(sum) != 8 || uint32(want) != crc32.ChecksumIEEE(body) {
		return nil, false, false
	}
	return body, true, false
}

// errDamaged is the error of a record whose checksum holds but whose JSON is not an
// event's.
var errDamaged = errors.New("damaged spool record")

// headerRoom is what a message's subject and headers may take beside its data, as
// in [events.Event.MsgWithin].
const headerRoom = 1 << 10

// recordMsg returns the message that publishes a spooled event's JSON, which is
// read from a buffer that the caller reuses.
func recordMsg(body []byte, maxPayload int64) (*nats.Msg, error) {
	r, err := spooledRecord(body, &lastHead{})
	if err != nil {
		return nil, err
	}
	if r, err = fitRecord(r, maxPayload); err != nil {
		return nil, err
	}
	m := nats.NewMsg(r.subject)
	m.Data = bytes.Clone(r.data)
	m.Header.Set(jetstream.MsgIDHeader, r.id)
	return m, nil
}

// lastHead is what spooledRecord keeps of one record for the next: the next one is
// mostly of the same task and type.
type lastHead struct {
	h       recordHead
	subject string // "" when there was none
}

// spooledRecord returns the record that publishes a spooled event's JSON as it is.
// The checksum of the record holds, so only what the subject and the message id
// need is read: decoding the whole event would cost the sender several times more.
func spooledRecord(body []byte, last *lastHead) (record, error) {
	h, err := parseHead(body, last.h)
	if err != nil {
		return record{}, fmt.Errorf("%w: %w", errDamaged, err)
	}
	if events.ValidateEventID(h.EventID) != nil {
		return record{}, fmt.Errorf("%w: not an event", errDamaged)
	}
	if last.subject == "" || h.TaskID != last.h.TaskID || h.TaskType != last.h.TaskType ||
		h.EventType != last.h.EventType {
		if events.ValidateTaskID(h.TaskID) != nil || !h.TaskType.Valid() || !h.EventType.Valid() {
			return record{}, fmt.Errorf("%w: not an event", errDamaged)
		}
		last.subject = events.Subject(h.TaskType, h.TaskID, h.EventType)
	}
	last.h = h
	return record{subject: last.subject, id: h.EventID, data: body,
		progress: h.EventType == events.TaskProgress}, nil
}

// fitRecord returns a record that the server takes: r, or, for an event too large
// for its max payload, the event with its largest fields left out (see
// [events.Event.MsgWithin]). An event that does not fit even so is an error.
func fitRecord(r record, maxPayload int64) (record, error) {
	if maxPayload <= 0 || int64(len(r.data))+headerRoom <= maxPayload {
		return r, nil
	}
	e, err := events.Decode(r.data)
	if err != nil {
		return record{}, fmt.Errorf("%w: %w", errDamaged, err)
	}
	m, err := e.MsgWithin(maxPayload)
	if err != nil {
		return record{}, err
	}
	r.data = m.Data
	return r, nil
}

// publishMsgs publishes messages in order and waits until JetStream acknowledged
// every one. A resend of an event it already has is dropped by its message id.
func publishMsgs(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) error {
	const chunk = 1024
	for start := 0; start < len(msgs); start += chunk {
		part := msgs[start:min(start+chunk, len(msgs))]
		futures := make([]jetstream.PubAckFuture, 0, len(part))
		for _, m := range part {
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("publish spooled event: %w", err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish spooled event: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// DrainSpool sends the spool files in dir that no live process holds, oldest first,
// and removes each one once JetStream has acknowledged all of its events. It returns
// how many events it sent. The collector calls it periodically; every client calls
// it once when it first connects.
func DrainSpool(ctx context.Context, js jetstream.JetStream, dir string, log *slog.Logger) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read spool dir: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), spoolExt) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)

	// A file that cannot be sent now does not hold back the others.
	sent := 0
	var errs []error
	for _, name := range names {
		n, err := drainFile(ctx, js, filepath.Join(dir, name), log)
		sent += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return sent, errors.Join(errs...)
}

func drainFile(ctx context.Context, js jetstream.JetStream, path string, log *slog.Logger) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil // another drainer was quicker
		}
		return 0, fmt.Errorf("open spool file: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, nil // its process is alive and will send it itself
	}
	if _, err := os.Stat(path); err != nil {
		return 0, nil // removed by the drainer that held the lock before us
	}

	b, err := readRecords(bufio.NewReader(f), js.Conn().MaxPayload(), log)
	if err != nil {
		return 0, err
	}
	if b.bad > 0 {
		log.Warn("spool file has damaged records, skipped", "file", path, "records", b.bad)
	}
	if err := publishMsgs(ctx, js, b.msgs); err != nil {
		return 0, err
	}
	if err := os.Remove(path); err != nil {
		return len(b.msgs), fmt.Errorf("remove sent spool file: %w", err)
	}
	log.Info("spool file sent", "file", path, "events", len(b.msgs))
	return len(b.msgs), nil
}

// connected reports whether nc is up: while it is not, publishing only waits.
func connected(nc *nats.Conn) bool {
	return nc.Status() == nats.CONNECTED
}
