package main

import (
	"os"
	"testing"

	"github.com/miniray/miniray/internal/config"
)

// TestEverySettingIsDocumented keeps docs/configuration.md and configs/dashboard.yaml in
// step with the settings the program really has.
func TestEverySettingIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../configs/dashboard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range config.Undocumented(settings, string(doc), string(example)) {
		t.Errorf("missing: %s", m)
	}
}
