package events

import (
	"fmt"

	"github.com/nats-io/nuid"
)

// MaxIDLen bounds task and event ids, so that subjects and KV keys stay short.
const MaxIDLen = 128

// NewEventID returns a new unique event id. It is cheap enough for the progress path
// of a job: nuid hands out ids from a random prefix and a counter.
func NewEventID() string {
	return nuid.Next()
}

// NewTaskID returns a new subject-safe task id such as "training_<random>".
func NewTaskID(tt TaskType) string {
	return string(tt) + "_" + nuid.Next()
}

// ValidateTaskID reports whether id can be a task id: 1 to [MaxIDLen] characters of
// ASCII letters, digits, '_' and '-'. Anything else (dots, spaces, the wildcards '*'
// and '>') would change the shape of the task's subject or of its KV key.
func ValidateTaskID(id string) error {
	if err := validateToken(id); err != nil {
		return &FieldError{Field: "task_id", Msg: err.Error()}
	}
	return nil
}

// ValidateEventID applies the rules of [ValidateTaskID] to an event id, which also
// travels as a NATS header value.
func ValidateEventID(id string) error {
	if err := validateToken(id); err != nil {
		return &FieldError{Field: "event_id", Msg: err.Error()}
	}
	return nil
}

func validateToken(id string) error {
	if id == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("longer than %d characters", MaxIDLen)
	}
	for i, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%q has %q at byte %d: only ASCII letters, digits, '_' and '-'"+
				" are allowed", id, c, i)
		}
	}
	return nil
}
