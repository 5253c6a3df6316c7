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
// reached, so that a job that runs, or even ends, without NATS loses nothing. Each
// client appends to a file of its own, which it holds under an exclusive lock while
// it lives. A file whose lock is free belongs to a process that is gone: any client
// or the collector may send it and then remove it.
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

// spoolFile is one client's own spool file.
type spoolFile struct {
	path string
	f    *os.File
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

// append writes events as one write and syncs it: a spooled event must survive the
// job's process and, as far as the disk allows, the machine.
func (s *spoolFile) append(evs []events.Event) error {
	var buf bytes.Buffer
	for i := range evs {
		b, err := evs[i].Encode()
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "%08x ", crc32.ChecksumIEEE(b))
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	return nil
}

// read returns every intact event in the file.
func (s *spoolFile) read() ([]events.Event, int, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, 0, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	return readSpool(f)
}

// empty truncates the file once everything in it has been acknowledged.
func (s *spoolFile) empty() error {
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate spool: %w", err)
	}
	return nil
}

// close releases the file, removing it when it holds nothing.
func (s *spoolFile) close(keep bool) error {
	if !keep {
		os.Remove(s.path)
	}
	return s.f.Close()
}

// readSpool parses spool records, skipping (and counting) the lines whose checksum
// or JSON is wrong.
func readSpool(r io.Reader) ([]events.Event, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var out []events.Event
	bad := 0
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		sum, body, ok := bytes.Cut(line, []byte(" "))
		want, err := strconv.ParseUint(string(sum), 16, 32)
		if !ok || err != nil || len(sum) != 8 || uint32(want) != crc32.ChecksumIEEE(body) {
			bad++
			continue
		}
		e, err := events.Decode(body)
		if err != nil {
			bad++
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, bad, fmt.Errorf("read spool: %w", err)
	}
	return out, bad, nil
}

// publishAll publishes events in order and waits until JetStream acknowledged every
// one. A resend of an event it already has is dropped by its message id. An event
// that cannot fit the server's max payload even cut down is logged and left out: it
// would never be accepted, and would hold back all the others.
func publishAll(ctx context.Context, js jetstream.JetStream, evs []events.Event, log *slog.Logger) error {
	maxPayload := js.Conn().MaxPayload()
	const chunk = 1024
	for start := 0; start < len(evs); start += chunk {
		part := evs[start:min(start+chunk, len(evs))]
		futures := make([]jetstream.PubAckFuture, 0, len(part))
		for i := range part {
			m, err := part[i].MsgWithin(maxPayload)
			if err != nil {
				log.Error("spooled event cannot be sent", "event_id", part[i].EventID, "error", err)
				continue
			}
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

	evs, bad, err := readSpool(f)
	if err != nil {
		return 0, err
	}
	if bad > 0 {
		log.Warn("spool file has damaged records, skipped", "file", path, "records", bad)
	}
	if err := publishAll(ctx, js, evs, log); err != nil {
		return 0, err
	}
	if err := os.Remove(path); err != nil {
		return len(evs), fmt.Errorf("remove sent spool file: %w", err)
	}
	log.Info("spool file sent", "file", path, "events", len(evs))
	return len(evs), nil
}

// connected reports whether nc is up: while it is not, publishing only waits.
func connected(nc *nats.Conn) bool {
	return nc.Status() == nats.CONNECTED
}
