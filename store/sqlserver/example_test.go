package sqlserver_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/sqlserver"
)

// Open a SQL Server database, migrate it, and send a message the way an
// application would. (Not run: it needs a server. The same insert from T-SQL
// is EXEC hermod.SendMessage @ToAddress = N'+31612345678', @Body = N'Hello'.)
func ExampleOpen() {
	ctx := context.Background()
	s, err := sqlserver.Open(ctx, "sqlserver://hermod:secret@db.example.com?database=sms", sqlserver.Options{
		Logger: slog.Default(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	res, err := s.MessageInsert(ctx, []store.NewMessage{{
		ToAddress:       "+31612345678",
		Body:            "Hello from Hermod",
		ClientReference: "order-4711", // sending it twice returns the same ID
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("message", res[0].ID, "existing:", res[0].Existing)
}

// An Azure SQL Database with a managed identity: the azuresql scheme uses
// Microsoft Entra ID authentication, named by fedauth.
func ExampleOpen_azureSQL() {
	s, err := sqlserver.Open(context.Background(),
		"azuresql://myserver.database.windows.net?database=sms&fedauth=ActiveDirectoryManagedIdentity",
		sqlserver.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
}
