package main

import (
	"os"
	"strings"
	"testing"

	"github.com/miniray/miniray/internal/config"
)

// TestEverySettingIsDocumented keeps docs/configuration.md and configs/collector.yaml in
// step with the settings the program really has.
func TestEverySettingIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../configs/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range config.Undocumented(settings, string(doc), string(example)) {
		t.Errorf("missing: %s", m)
	}
	// The variable that names the config file is not a setting of its own.
	if v := config.EnvPrefix + "_COLLECTOR_CONFIG"; !strings.Contains(string(doc), "`"+v+"`") {
		t.Errorf("missing: %s", v)
	}
}
