;; Reads in/input.txt from the volume preopened at fd 3 (the allocation's first volume),
;; upper-cases its ASCII letters and writes out/result.txt beside it; exits 0.
;; A failing WASI call exits with 99. Reads up to 64 KiB.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 100) "in/input.txt")
  (data (i32.const 200) "out")
  (data (i32.const 300) "out/result.txt")
  ;; iovec at 0, byte count at 8, opened fd at 16, the buffer at 65536.
  (func $check (param $errno i32)
    (if (local.get $errno) (then (call $proc_exit (i32.const 99)))))
  (func $open (param $path i32) (param $len i32) (param $flags i32) (result i32)
    (call $check (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (local.get $len)
      (local.get $flags) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
    (i32.load (i32.const 16)))
  (func (export "_start")
    (local $fd i32) (local $n i32) (local $i i32) (local $c i32)
    (local.set $fd (call $open (i32.const 100) (i32.const 12) (i32.const 0)))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 65536))
    (call $check (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (call $check (call $fd_close (local.get $fd)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (i32.add (i32.const 65536) (local.get $i))
            (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; `out` may exist already (a restart): its error is not one.
    (drop (call $mkdir (i32.const 3) (i32.const 200) (i32.const 3)))
    ;; O_CREAT | O_TRUNC = 9
    (local.set $fd (call $open (i32.const 300) (i32.const 14) (i32.const 9)))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (local.get $n))
    (call $check (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $check (call $fd_close (local.get $fd)))
    (call $proc_exit (i32.const 0))))
