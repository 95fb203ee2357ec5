;; Grows its memory one 64 KiB page at a time, forever; exits 42 if a grow is refused
;; without a trap.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
        (then (call $proc_exit (i32.const 42))))
      (br $more))))
