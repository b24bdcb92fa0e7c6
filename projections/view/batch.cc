#include "projections/view/batch.h"

#include <rocksdb/db.h>

#include <set>
#include <stdexcept>

namespace a3::projections::view {

std::string Batch::overlay_key(Family f, std::string_view key) {
  std::string k(1, static_cast<char>(f));
  k.append(key);
  return k;
}

std::optional<std::string> Batch::get(Family f, std::string_view key) {
  const std::string k = overlay_key(f, key);
  if (auto it = writes_.find(k); it != writes_.end()) return it->second;
  if (auto it = reads_.find(k); it != reads_.end()) return it->second;
  std::string value;
  std::optional<std::string> out;
  const auto s = db_.db()->Get(rocksdb::ReadOptions(), db_.cf(f),
                               rocksdb::Slice(key.data(), key.size()), &value);
  if (s.ok()) {
    out = std::move(value);
  } else if (!s.IsNotFound()) {
    // A read error is not "absent": applying on a guess would make the view
    // differ from its log. The projector stops and says why.
    throw std::runtime_error("view read failed: " + s.ToString());
  }
  if (f != Family::blobs && f != Family::staging) reads_.emplace(k, out);
  return out;
}

void Batch::put(Family f, std::string_view key, std::string_view value) {
  if (f == Family::blobs) {
    bodies_.Put(db_.cf(f), rocksdb::Slice(key.data(), key.size()),
                rocksdb::Slice(value.data(), value.size()));
    body_bytes_ += value.size();
    return;
  }
  if (f == Family::staging) body_bytes_ += value.size();
  writes_.insert_or_assign(overlay_key(f, key), std::string(value));
}

void Batch::del(Family f, std::string_view key) {
  if (f == Family::blobs) {
    bodies_.Delete(db_.cf(f), rocksdb::Slice(key.data(), key.size()));
    return;
  }
  writes_.insert_or_assign(overlay_key(f, key), std::nullopt);
}

void Batch::scan(Family f, std::string_view prefix,
                 const std::function<bool(std::string_view, std::string_view)>& visit) {
  // Scans are rare (deleting or renaming a mailbox): merge the database's
  // keys with the overlay's in a small ordered map.
  std::map<std::string, std::string> merged;
  std::unique_ptr<rocksdb::Iterator> it(db_.db()->NewIterator(rocksdb::ReadOptions(), db_.cf(f)));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    merged.emplace(it->key().ToString(), it->value().ToString());
  }
  const std::string from = overlay_key(f, prefix);
  for (auto w = writes_.lower_bound(from); w != writes_.end() && w->first.starts_with(from); ++w) {
    std::string key = w->first.substr(1);
    if (w->second) {
      merged.insert_or_assign(std::move(key), *w->second);
    } else {
      merged.erase(key);
    }
  }
  for (const auto& [k, v] : merged) {
    if (!visit(k, v)) break;
  }
}

void Batch::scan_range(Family f, std::string_view begin, std::string_view end,
                       const std::function<void(std::string_view)>& visit) {
  std::set<std::string> keys;
  const rocksdb::Slice e(end.data(), end.size());
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &e;  // never walks past `end`, tombstones included
  std::unique_ptr<rocksdb::Iterator> it(db_.db()->NewIterator(ro, db_.cf(f)));
  for (it->Seek(rocksdb::Slice(begin.data(), begin.size()));
       it->Valid() && it->key().compare(e) < 0; it->Next())
    keys.insert(it->key().ToString());
  const std::string from = overlay_key(f, begin);
  const std::string to = overlay_key(f, end);
  for (auto w = writes_.lower_bound(from); w != writes_.end() && w->first < to; ++w) {
    if (w->second) {
      keys.insert(w->first.substr(1));
    } else {
      keys.erase(w->first.substr(1));
    }
  }
  for (const auto& k : keys)
    visit(k);
}

rocksdb::Status Batch::commit() {
  rocksdb::WriteBatch wb = std::move(bodies_);
  for (const auto& [k, v] : writes_) {
    const auto f = static_cast<Family>(k[0]);
    const rocksdb::Slice key(k.data() + 1, k.size() - 1);
    if (v) {
      wb.Put(db_.cf(f), key, *v);
    } else {
      wb.Delete(db_.cf(f), key);
    }
  }
  // Never synced: the view is a function of the log. Without the WAL (bulk
  // rebuilds) atomic_flush (view_db.cc) keeps every column family at the
  // same commit on disk, so a crash leaves the view as it was at some earlier
  // commit, positions included, and the projector re-applies the rest.
  rocksdb::WriteOptions wo;
  wo.disableWAL = !db_.wal();
  const auto s = db_.db()->Write(wo, &wb);
  writes_.clear();
  reads_.clear();
  bodies_.Clear();
  body_bytes_ = 0;
  return s;
}

}  // namespace a3::projections::view
