// Package pkgbench holds Go benchmarks of the code in pkg/ that the suite's figures
// come down to: decoding and encoding one event, folding it into the projection,
// and answering the API's queries over 100,000 tasks. They have no server and no
// network, so that a profile of one shows that code alone:
//
//	go test -run '^$' -bench . -benchmem ./bench/pkgbench
//	go test -run '^$' -bench List -cpuprofile cpu.out ./bench/pkgbench
//
// The package has no code of its own besides its tests.
package pkgbench
