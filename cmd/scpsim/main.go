// Command scpsim is the SCP simulator: it answers "where is this terminal"
// over HTTP (and CAP) from subscriber state an operator controls.
package main

func main() {}
