package config

import "strings"

// Undocumented returns what the configuration reference doc and the example file
// example fail to say about settings: each setting needs its table row, with key,
// flag and environment variable, in the doc, and its key in the example.
func Undocumented(settings []Setting, doc, example string) []string {
	var missing []string
	for _, s := range settings {
		row := "| `" + s.Key + "` | `--" + s.Flag() + "` | `" + s.Env() + "` |"
		if !strings.Contains(doc, row) {
			missing = append(missing, "docs row "+row)
		}
		if !strings.Contains(example, s.Key+":") {
			missing = append(missing, "example key "+s.Key)
		}
	}
	return missing
}
