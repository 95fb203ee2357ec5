;; Prints to stdout and stderr, prints its environment (one VAR=value a line), writes
;; out.txt in the preopened directory (fd 3), then exits with code 3.
;; A failing WASI call exits with 99 (WASI exit codes must be under 126).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello from wasm\n")
  (data (i32.const 200) "out.txt")
  (data (i32.const 300) "written by wasm\n")
  (data (i32.const 400) "oops on stderr\n")
  ;; iovec at 0, bytes written at 8, environ sizes at 16/20, opened fd at 24,
  ;; environ pointers at 1024, environ strings at 2048.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $check (param $errno i32)
    (if (local.get $errno) (then (call $proc_exit (i32.const 99)))))
  (func (export "_start")
    (local $i i32) (local $size i32)
    (call $check (call $write (i32.const 1) (i32.const 100) (i32.const 16)))
    (call $check (call $write (i32.const 2) (i32.const 400) (i32.const 15)))
    (call $check (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (call $check (call $environ_get (i32.const 1024) (i32.const 2048)))
    (local.set $size (i32.load (i32.const 20)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
        (if (i32.eqz (i32.load8_u (i32.add (i32.const 2048) (local.get $i))))
          (then (i32.store8 (i32.add (i32.const 2048) (local.get $i)) (i32.const 10))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $check (call $write (i32.const 1) (i32.const 2048) (local.get $size)))
    ;; O_CREAT | O_TRUNC = 9
    (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 7)
      (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 24)))
    (call $check (call $write (i32.load (i32.const 24)) (i32.const 300) (i32.const 16)))
    (call $check (call $fd_close (i32.load (i32.const 24))))
    (call $proc_exit (i32.const 3))))
