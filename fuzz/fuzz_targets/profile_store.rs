//! A profile store file of any content: opened and read as the shim and `chaperone profile`
//! read it, or a clear error; never a panic.
#![no_main]

use chaperone_profiler::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("profiles.db");
    std::fs::write(&path, data).expect("the file is written");
    let Ok(store) = Store::open_to_read(&path) else {
        return;
    };
    let Ok(list) = store.list() else {
        return;
    };
    for summary in list.iter().take(4) {
        let key = summary.key.as_str();
        let _ = store.summary(key);
        let _ = store.load(key);
        let _ = store.threshold(key, 0.05);
        let _ = store.runs(key);
        let _ = store.workloads(key);
        let _ = store.new_rate(key, 5_000);
    }
});
