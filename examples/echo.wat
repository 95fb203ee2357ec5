;; echo: a WASI (preview 1) program that prints its arguments, separated by spaces,
;; followed by a new line — like /bin/echo. Used by the example ensembles; dms runs
;; text (.wat) modules as they are.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; Memory map: 0 argc, 4 argv buffer size, 8 the iovec, 16.. argv pointers,
  ;; 1024.. the arguments, 8192.. the output line.
  (memory (export "memory") 1)
  (func (export "_start")
    (local $argc i32) (local $i i32) (local $p i32) (local $out i32)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 16) (i32.const 1024)))
    (local.set $argc (i32.load (i32.const 0)))
    (local.set $out (i32.const 8192))
    ;; Argument 0 is the program name: start at 1.
    (local.set $i (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $argc)))
        (if (i32.gt_u (local.get $i) (i32.const 1))
          (then
            (i32.store8 (local.get $out) (i32.const 32))
            (local.set $out (i32.add (local.get $out) (i32.const 1)))))
        (local.set $p (i32.load (i32.add (i32.const 16) (i32.mul (local.get $i) (i32.const 4)))))
        (block $end
          (loop $copy
            (br_if $end (i32.eqz (i32.load8_u (local.get $p))))
            (i32.store8 (local.get $out) (i32.load8_u (local.get $p)))
            (local.set $out (i32.add (local.get $out) (i32.const 1)))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $copy)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store8 (local.get $out) (i32.const 10))
    (local.set $out (i32.add (local.get $out) (i32.const 1)))
    (i32.store (i32.const 8) (i32.const 8192))
    (i32.store (i32.const 12) (i32.sub (local.get $out) (i32.const 8192)))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 4))))
)
