package webui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the page's files with index.html at the root, ready for
// http.FileServer(http.FS(webui.FS())) or gin's StaticFS at "/".
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path name, and "static" is valid.
		panic("webui: " + err.Error())
	}
	return sub
}
