#include "projections/view/batch.h"

#include <rocksdb/db.h>

namespace a3::projections::view {

std::optional<std::string> Batch::get(Family f, std::string_view key) {
  std::string value;
  const auto s = wb_.GetFromBatchAndDB(db_.db(), rocksdb::ReadOptions(), db_.cf(f),
                                       rocksdb::Slice(key.data(), key.size()), &value);
  if (s.ok()) return value;
  return std::nullopt;
}

void Batch::put(Family f, std::string_view key, std::string_view value) {
  wb_.Put(db_.cf(f), rocksdb::Slice(key.data(), key.size()),
          rocksdb::Slice(value.data(), value.size()));
}

void Batch::del(Family f, std::string_view key) {
  wb_.Delete(db_.cf(f), rocksdb::Slice(key.data(), key.size()));
}

void Batch::scan(Family f, std::string_view prefix,
                 const std::function<bool(std::string_view, std::string_view)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(
      wb_.NewIteratorWithBase(db_.cf(f), db_.db()->NewIterator(rocksdb::ReadOptions(), db_.cf(f))));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    if (!visit(it->key().ToStringView(), it->value().ToStringView())) break;
  }
}

rocksdb::Status Batch::commit() {
  rocksdb::WriteOptions wo;
  wo.sync = false;
  return db_.db()->Write(wo, wb_.GetWriteBatch());
}

}  // namespace a3::projections::view
